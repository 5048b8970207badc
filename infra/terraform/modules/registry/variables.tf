variable "name" {
  description = "Repository name."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9]+([._/-][a-z0-9]+)*$", var.name))
    error_message = "name must be a valid ECR repository name (lowercase)."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the images."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "max_tagged_images" {
  description = "Tagged images kept (older ones expire)."
  type        = number
  default     = 50

  validation {
    condition     = var.max_tagged_images >= 5
    error_message = "max_tagged_images must be at least 5 so rollbacks have something to go back to."
  }
}

variable "untagged_image_expiry_days" {
  description = "Days untagged images are kept."
  type        = number
  default     = 7

  validation {
    condition     = var.untagged_image_expiry_days >= 1
    error_message = "untagged_image_expiry_days must be at least 1."
  }
}

variable "force_delete" {
  description = "Allow deleting the repository while it holds images (staging only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
