variable "name" {
  description = "Name prefix (e.g. geoflow-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,40}$", var.name))
    error_message = "name must be lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "schedule_expression" {
  description = "When the report runs (UTC). The default runs shortly after midnight for the day before."
  type        = string
  default     = "cron(30 0 * * ? *)"

  validation {
    condition     = can(regex("^(cron|rate)\\(.+\\)$", var.schedule_expression))
    error_message = "schedule_expression must be a cron(...) or rate(...) expression."
  }
}

variable "enabled" {
  description = "Whether the schedule is enabled."
  type        = bool
  default     = true
}

variable "run_date_override" {
  description = "Pin RUN_DATE (YYYY-MM-DD) for every scheduled run; null lets the task default to yesterday UTC."
  type        = string
  default     = null

  validation {
    condition     = var.run_date_override == null || can(regex("^[0-9]{4}-[0-9]{2}-[0-9]{2}$", var.run_date_override))
    error_message = "run_date_override must be null or a YYYY-MM-DD date."
  }
}

variable "cluster_arn" {
  description = "ECS cluster running the task."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:", var.cluster_arn))
    error_message = "cluster_arn must be an ECS cluster ARN."
  }
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "task_definition_family_arn" {
  description = "ARN of the report task definition family without revision (runs the latest active revision)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecs:[a-z0-9-]+:[0-9]{12}:task-definition/[A-Za-z0-9_-]+$", var.task_definition_family_arn))
    error_message = "task_definition_family_arn must be a task definition ARN without revision."
  }
}

variable "container_name" {
  description = "Container name in the report task definition."
  type        = string
  default     = "report"
}

variable "task_role_arn" {
  description = "Task role of the report task (passed to ECS)."
  type        = string
}

variable "execution_role_arn" {
  description = "Execution role of the report task (passed to ECS)."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets for the task."
  type        = list(string)

  validation {
    condition     = length(var.subnet_ids) >= 1
    error_message = "At least one subnet is required."
  }
}

variable "security_group_ids" {
  description = "Security groups of the task."
  type        = list(string)
}

variable "kms_key_arn" {
  description = "KMS key encrypting the schedule and its dead-letter queue."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
