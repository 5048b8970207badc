variable "name" {
  description = "Name prefix of alarms, topic and dashboard (e.g. geoflow-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the SNS topic (its policy must admit cloudwatch.amazonaws.com and events.amazonaws.com)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "alarm_emails" {
  description = "E-mail addresses subscribed to the alarm topic (each must confirm)."
  type        = list(string)
  default     = []

  validation {
    condition     = alltrue([for e in var.alarm_emails : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", e))])
    error_message = "alarm_emails must contain e-mail addresses."
  }
}

variable "queue_name" {
  description = "Ingest queue name."
  type        = string
}

variable "dlq_name" {
  description = "Dead-letter queue name."
  type        = string
}

variable "alb_arn_suffix" {
  description = "ALB ARN suffix."
  type        = string
}

variable "target_group_arn_suffix" {
  description = "api target group ARN suffix."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "cluster_arn" {
  description = "ECS cluster ARN (task failure events)."
  type        = string
}

variable "worker_service_name" {
  description = "ECS service name of the workers."
  type        = string
}

variable "db_instance_identifier" {
  description = "RDS instance identifier."
  type        = string
}

variable "bucket_name" {
  description = "Data bucket (report heartbeat)."
  type        = string
}

variable "reports_prefix" {
  description = "Prefix of the daily reports."
  type        = string
  default     = "reports/"
}

variable "oldest_message_age_seconds" {
  description = "Alarm when the oldest ingest message is older than this."
  type        = number
  default     = 900

  validation {
    condition     = var.oldest_message_age_seconds >= 60
    error_message = "oldest_message_age_seconds must be at least 60."
  }
}

variable "http_5xx_threshold" {
  description = "5xx responses per minute that count as a breach."
  type        = number
  default     = 5

  validation {
    condition     = var.http_5xx_threshold >= 0
    error_message = "http_5xx_threshold must be non-negative."
  }
}

variable "latency_p95_seconds" {
  description = "p95 target response time that counts as a breach."
  type        = number
  default     = 1.5

  validation {
    condition     = var.latency_p95_seconds > 0
    error_message = "latency_p95_seconds must be positive."
  }
}

variable "rds_cpu_percent" {
  description = "Database CPU alarm threshold."
  type        = number
  default     = 80

  validation {
    condition     = var.rds_cpu_percent > 0 && var.rds_cpu_percent <= 100
    error_message = "rds_cpu_percent must be between 0 and 100."
  }
}

variable "rds_free_storage_gib" {
  description = "Database free storage alarm threshold in GiB."
  type        = number
  default     = 5

  validation {
    condition     = var.rds_free_storage_gib > 0
    error_message = "rds_free_storage_gib must be positive."
  }
}

variable "rds_max_connections" {
  description = "Database connections alarm threshold."
  type        = number
  default     = 80

  validation {
    condition     = var.rds_max_connections > 0
    error_message = "rds_max_connections must be positive."
  }
}

variable "report_missing_hours" {
  description = "Alarm when no report object was written for this many hours."
  type        = number
  default     = 25

  validation {
    condition     = var.report_missing_hours >= 24 && var.report_missing_hours <= 168
    error_message = "report_missing_hours must be between 24 and 168."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
