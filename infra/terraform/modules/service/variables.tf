variable "name" {
  description = "Name of the ECS cluster and prefix of every resource (e.g. geoflow-prod)."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,24}$", var.name))
    error_message = "name must be 2-25 lowercase letters, digits or hyphens, starting with a letter."
  }
}

# --- Network ----------------------------------------------------------------------------------

variable "vpc_id" {
  description = "VPC of the service."
  type        = string
}

variable "vpc_cidr_block" {
  description = "CIDR of the VPC (task egress to the interface endpoints)."
  type        = string

  validation {
    condition     = can(cidrhost(var.vpc_cidr_block, 0))
    error_message = "vpc_cidr_block must be a CIDR block."
  }
}

variable "public_subnet_ids" {
  description = "Public subnets for the ALB."
  type        = list(string)

  validation {
    condition     = length(var.public_subnet_ids) >= 2
    error_message = "The ALB needs subnets in at least two AZs."
  }
}

variable "private_subnet_ids" {
  description = "Private subnets for the tasks."
  type        = list(string)

  validation {
    condition     = length(var.private_subnet_ids) >= 2
    error_message = "Spread tasks over at least two AZs."
  }
}

variable "s3_prefix_list_id" {
  description = "Prefix list of the S3 gateway endpoint."
  type        = string
}

# --- Load balancer ----------------------------------------------------------------------------

variable "certificate_arn" {
  description = "ACM certificate for the HTTPS listener."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:acm:", var.certificate_arn))
    error_message = "certificate_arn must be an ACM certificate ARN."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-TLS13-", var.ssl_policy))
    error_message = "ssl_policy must be one of the ELBSecurityPolicy-TLS13-* policies (TLS 1.2 minimum)."
  }
}

variable "alb_idle_timeout" {
  description = "ALB idle timeout in seconds (uploads stream through the API)."
  type        = number
  default     = 120

  validation {
    condition     = var.alb_idle_timeout >= 1 && var.alb_idle_timeout <= 4000
    error_message = "alb_idle_timeout must be between 1 and 4000 seconds."
  }
}

variable "access_logs_bucket" {
  description = "Bucket receiving ALB access logs (SSE-S3, with a policy admitting ELB log delivery)."
  type        = string
}

variable "access_logs_prefix" {
  description = "Prefix of ALB access logs in access_logs_bucket."
  type        = string
  default     = "alb"
}

variable "deletion_protection" {
  description = "Protect the ALB from deletion."
  type        = bool
  default     = true
}

# --- Image ------------------------------------------------------------------------------------

variable "repository_url" {
  description = "ECR repository URL of the geoflow image."
  type        = string
}

variable "repository_arn" {
  description = "ECR repository ARN (the execution role may pull from it only)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "image_tag" {
  description = "Image tag of the first deployment; later revisions are registered by the deploy pipeline."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.image_tag)) && var.image_tag != "latest"
    error_message = "image_tag must be a valid, immutable tag (not \"latest\")."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "container_user" {
  description = "Non-root uid:gid the container runs as."
  type        = string
  default     = "10001:10001"

  validation {
    condition     = can(regex("^[1-9][0-9]*(:[1-9][0-9]*)?$", var.container_user))
    error_message = "container_user must be a non-zero numeric uid[:gid] (never root)."
  }
}

variable "container_port" {
  description = "Port the api listens on (GEOFLOW_LISTEN)."
  type        = number
  default     = 8080

  validation {
    condition     = var.container_port >= 1024 && var.container_port <= 65535
    error_message = "container_port must be an unprivileged port."
  }
}

variable "worker_health_check" {
  description = "Give worker containers the `geoflow healthcheck` container health check (the worker must answer /readyz on GEOFLOW_LISTEN)."
  type        = bool
  default     = true
}

variable "stop_timeout" {
  description = "Seconds ECS waits after SIGTERM before SIGKILL; must exceed the worker's 60 s graceful shutdown (Fargate maximum 120)."
  type        = number
  default     = 120

  validation {
    condition     = var.stop_timeout > 60 && var.stop_timeout <= 120
    error_message = "stop_timeout must be above the worker's 60 s grace period and at most 120 (Fargate limit)."
  }
}

variable "log_retention_days" {
  description = "Retention of the container log groups."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (e.g. 14, 30, 90, 365)."
  }
}

variable "kms_key_arn" {
  description = "KMS key of the bucket, queue, logs and secrets."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "secret_recovery_window_in_days" {
  description = "Recovery window of the API token secret after deletion."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_window_in_days == 0 || (var.secret_recovery_window_in_days >= 7 && var.secret_recovery_window_in_days <= 30)
    error_message = "secret_recovery_window_in_days must be 0 or between 7 and 30."
  }
}

# --- Storage and queue ------------------------------------------------------------------------

variable "bucket_name" {
  description = "Data bucket (GEOFLOW_STORAGE_URL=s3://<bucket>)."
  type        = string
}

variable "bucket_arn" {
  description = "ARN of the data bucket."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9.-]+$", var.bucket_arn))
    error_message = "bucket_arn must be an S3 bucket ARN."
  }
}

variable "raw_prefix" {
  description = "Prefix of uploads (api writes, worker reads)."
  type        = string
  default     = "raw/"
}

variable "reports_prefix" {
  description = "Prefix of daily reports (report writes, api reads)."
  type        = string
  default     = "reports/"
}

variable "queue_url" {
  description = "Ingest queue URL (GEOFLOW_QUEUE_URL)."
  type        = string
}

variable "queue_arn" {
  description = "Ingest queue ARN (the worker consumes it)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:sqs:", var.queue_arn))
    error_message = "queue_arn must be an SQS queue ARN."
  }
}

variable "queue_name" {
  description = "Ingest queue name (CloudWatch dimension for the backlog metric)."
  type        = string
}

# --- Database ---------------------------------------------------------------------------------

variable "database_address" {
  description = "PostgreSQL host."
  type        = string
}

variable "database_port" {
  description = "PostgreSQL port."
  type        = number
  default     = 5432
}

variable "database_name" {
  description = "Database name."
  type        = string
}

variable "database_secret_arn" {
  description = "Secrets Manager secret with JSON keys username and password (the RDS-managed master secret)."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:secretsmanager:", var.database_secret_arn))
    error_message = "database_secret_arn must be a Secrets Manager secret ARN."
  }
}

variable "database_security_group_id" {
  description = "Security group of the database (task egress target)."
  type        = string
}

variable "database_sslmode" {
  description = "libpq sslmode in GEOFLOW_DATABASE_URL; verify-full needs the RDS CA bundle in the image."
  type        = string
  default     = "require"

  validation {
    condition     = contains(["require", "verify-ca", "verify-full"], var.database_sslmode)
    error_message = "database_sslmode must be require, verify-ca or verify-full (TLS is mandatory)."
  }
}

# --- Sizes ------------------------------------------------------------------------------------

variable "api_cpu" {
  description = "CPU units of an api task."
  type        = number
  default     = 512
}

variable "api_memory" {
  description = "Memory (MiB) of an api task."
  type        = number
  default     = 1024
}

variable "api_desired_count" {
  description = "Number of api tasks."
  type        = number
  default     = 2

  validation {
    condition     = var.api_desired_count >= 1
    error_message = "api_desired_count must be at least 1."
  }
}

variable "worker_cpu" {
  description = "CPU units of a worker task."
  type        = number
  default     = 1024
}

variable "worker_memory" {
  description = "Memory (MiB) of a worker task."
  type        = number
  default     = 2048
}

variable "worker_min_count" {
  description = "Minimum worker tasks."
  type        = number
  default     = 1

  validation {
    condition     = var.worker_min_count >= 1
    error_message = "worker_min_count must be at least 1 (backlog per task is undefined with no tasks)."
  }
}

variable "worker_max_count" {
  description = "Maximum worker tasks."
  type        = number
  default     = 4

  validation {
    condition     = var.worker_max_count >= 1 && var.worker_max_count <= 100
    error_message = "worker_max_count must be between 1 and 100."
  }
}

variable "worker_backlog_per_task" {
  description = "Target visible messages per worker task (acceptable latency / time per message)."
  type        = number
  default     = 10

  validation {
    condition     = var.worker_backlog_per_task > 0
    error_message = "worker_backlog_per_task must be positive."
  }
}

variable "worker_use_fargate_spot" {
  description = "Run workers on Fargate Spot (interruptions are safe: unfinished messages reappear after the visibility timeout)."
  type        = bool
  default     = false
}

variable "report_cpu" {
  description = "CPU units of the report task."
  type        = number
  default     = 256
}

variable "report_memory" {
  description = "Memory (MiB) of the report task."
  type        = number
  default     = 512
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
