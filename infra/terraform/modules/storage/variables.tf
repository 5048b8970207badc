variable "bucket_name" {
  description = "Name of the data bucket (raw uploads and reports). The log bucket is <bucket_name>-logs."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,56}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be a valid S3 bucket name of at most 58 characters (room for the -logs suffix)."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN for SSE-KMS on the data bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "queue_arn" {
  description = "ARN of the SQS queue receiving ObjectCreated/ObjectRemoved events for raw/. Its policy must already allow this bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:", var.queue_arn))
    error_message = "queue_arn must be an SQS queue ARN."
  }
}

variable "raw_prefix" {
  description = "Key prefix of uploads (raw/<dataset>/<YYYY-MM-DD>/<name>)."
  type        = string
  default     = "raw/"

  validation {
    condition     = can(regex("^[a-z0-9_-]+/$", var.raw_prefix))
    error_message = "raw_prefix must be a single path segment ending in /."
  }
}

variable "raw_transition_days" {
  description = "Days after which raw uploads move to STANDARD_IA."
  type        = number
  default     = 30

  validation {
    condition     = var.raw_transition_days >= 30
    error_message = "S3 requires at least 30 days before a transition to STANDARD_IA."
  }
}

variable "raw_expiration_days" {
  description = "Days after which raw uploads expire (the loaded rows stay in the database)."
  type        = number
  default     = 365

  validation {
    condition     = var.raw_expiration_days > 30
    error_message = "raw_expiration_days must be greater than raw_transition_days' minimum (30)."
  }
}

variable "noncurrent_version_expiration_days" {
  description = "Days noncurrent object versions are kept."
  type        = number
  default     = 30

  validation {
    condition     = var.noncurrent_version_expiration_days >= 1
    error_message = "noncurrent_version_expiration_days must be at least 1."
  }
}

variable "access_log_retention_days" {
  description = "Days S3 and ALB access logs are kept in the log bucket."
  type        = number
  default     = 90

  validation {
    condition     = var.access_log_retention_days >= 1
    error_message = "access_log_retention_days must be at least 1."
  }
}

variable "alb_log_prefix" {
  description = "Prefix in the log bucket under which the ALB writes access logs."
  type        = string
  default     = "alb"

  validation {
    condition     = can(regex("^[a-z0-9-]+$", var.alb_log_prefix))
    error_message = "alb_log_prefix must be lowercase letters, digits or hyphens, without slashes."
  }
}

variable "enable_eventbridge" {
  description = "Send the bucket's events to EventBridge too (used by the 'no report written' alarm)."
  type        = bool
  default     = true
}

variable "force_destroy" {
  description = "Allow destroying the buckets while they hold objects (staging only)."
  type        = bool
  default     = false
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
