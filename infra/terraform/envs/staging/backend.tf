# State lives in S3, locked with an S3 lock file (Terraform >= 1.10). Bucket and region come
# from backend.hcl: terraform init -backend-config=backend.hcl
terraform {
  backend "s3" {
    key          = "geoflow/staging/terraform.tfstate"
    encrypt      = true
    use_lockfile = true
  }
}
