# checkov loads external checks only from directories that are Python packages.
