variable "region" {
  description = "AWS region of the environment."
  type        = string
  default     = "eu-central-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-central-1."
  }
}

variable "allowed_account_ids" {
  description = "AWS accounts Terraform may touch (guards against applying with the wrong credentials)."
  type        = list(string)

  validation {
    condition     = length(var.allowed_account_ids) >= 1 && alltrue([for a in var.allowed_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "allowed_account_ids must list 12-digit account IDs."
  }
}

variable "certificate_arn" {
  description = "ACM certificate (same region) for the API's host name."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "image_tag" {
  description = "Image tag for the first deployment; the pipeline rolls out later ones."
  type        = string

  validation {
    condition     = var.image_tag != "latest"
    error_message = "Tags are immutable; use a versioned tag (e.g. the git SHA), not latest."
  }
}

variable "github_repository" {
  description = "GitHub repository (owner/name) whose environment of the same name may deploy."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name."
  }
}

variable "create_github_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (false when another stack in the account owns it)."
  type        = bool
  default     = true
}

variable "github_oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN when create_github_oidc_provider is false."
  type        = string
  default     = null
}

variable "alarm_emails" {
  description = "E-mail addresses receiving alarms."
  type        = list(string)
  default     = []
}

variable "tags" {
  description = "Extra tags for every resource (cost centre, owner)."
  type        = map(string)
  default     = {}
}
