variable "name" {
  description = "Name prefix; the role is <name>-deploy."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,50}$", var.name))
    error_message = "name must be lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "github_repository" {
  description = "GitHub repository allowed to deploy, as owner/name."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$", var.github_repository))
    error_message = "github_repository must be owner/name, without wildcards."
  }
}

variable "github_environments" {
  description = "GitHub environments of that repository whose jobs may assume the role."
  type        = list(string)

  validation {
    condition     = length(var.github_environments) >= 1 && alltrue([for e in var.github_environments : can(regex("^[A-Za-z0-9_.-]+$", e))])
    error_message = "github_environments must list at least one environment name, without wildcards."
  }
}

variable "create_oidc_provider" {
  description = "Create the account's GitHub OIDC provider (only once per account)."
  type        = bool
  default     = true
}

variable "oidc_provider_arn" {
  description = "Existing GitHub OIDC provider ARN, used when create_oidc_provider is false."
  type        = string
  default     = null

  validation {
    condition     = var.oidc_provider_arn == null || can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:oidc-provider/token.actions.githubusercontent.com$", var.oidc_provider_arn))
    error_message = "oidc_provider_arn must be the ARN of the token.actions.githubusercontent.com provider."
  }
}

variable "oidc_thumbprints" {
  description = "Certificate thumbprints of token.actions.githubusercontent.com (IAM no longer relies on them for GitHub, but the API accepts them)."
  type        = list(string)
  default     = ["6938fd4d98bab03faadb97b34396831e3780aea1", "1c58a3a8518e8759bf075b76b750d4f2df264fcd"]

  validation {
    condition     = alltrue([for t in var.oidc_thumbprints : can(regex("^[0-9a-f]{40}$", t))])
    error_message = "oidc_thumbprints must be 40-character lowercase hex SHA-1 fingerprints."
  }
}

variable "repository_arn" {
  description = "ECR repository the pipeline pushes to."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:ecr:", var.repository_arn))
    error_message = "repository_arn must be an ECR repository ARN."
  }
}

variable "kms_key_arn" {
  description = "KMS key encrypting the repository."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "cluster_arn" {
  description = "ECS cluster the pipeline deploys to."
  type        = string
}

variable "cluster_name" {
  description = "ECS cluster name."
  type        = string
}

variable "service_arns" {
  description = "ECS services the pipeline may update."
  type        = list(string)

  validation {
    condition     = length(var.service_arns) >= 1
    error_message = "service_arns must list at least one service."
  }
}

variable "task_definition_families" {
  description = "Task definition families the pipeline may run as one-off tasks (e.g. migrate)."
  type        = list(string)
}

variable "pass_role_arns" {
  description = "Task and execution roles the pipeline may pass to ECS with new task definitions."
  type        = list(string)

  validation {
    condition     = alltrue([for a in var.pass_role_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:role/", a))])
    error_message = "pass_role_arns must be IAM role ARNs."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
