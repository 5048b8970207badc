variable "name" {
  description = "Name prefix for every resource."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "cidr_block" {
  description = "IPv4 CIDR of the VPC (a /16 to /20)."
  type        = string
  default     = "10.40.0.0/16"

  validation {
    condition     = can(cidrhost(var.cidr_block, 0)) && tonumber(split("/", var.cidr_block)[1]) >= 16 && tonumber(split("/", var.cidr_block)[1]) <= 20
    error_message = "cidr_block must be a valid IPv4 CIDR between /16 and /20."
  }
}

variable "availability_zones" {
  description = "Availability zones (names, e.g. [\"eu-central-1a\", \"eu-central-1b\"]) to spread subnets over; the ALB and the RDS subnet group need two or more."
  type        = list(string)

  validation {
    condition     = length(var.availability_zones) >= 2 && length(var.availability_zones) <= 4 && length(distinct(var.availability_zones)) == length(var.availability_zones)
    error_message = "availability_zones must list 2 to 4 distinct zones."
  }

  validation {
    condition     = alltrue([for z in var.availability_zones : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9][a-z]$", z))])
    error_message = "availability_zones entries must be zone names such as eu-central-1a."
  }
}

variable "enable_nat_gateway" {
  description = "Create one NAT gateway for private subnets. Off by default: the VPC endpoints cover every AWS API the service uses."
  type        = bool
  default     = false
}

variable "interface_endpoints" {
  description = "AWS services reached through interface VPC endpoints from the private subnets (S3 always gets a gateway endpoint)."
  type        = list(string)
  default     = ["sqs", "ecr.api", "ecr.dkr", "logs", "secretsmanager", "sts"]

  validation {
    condition     = alltrue([for s in var.interface_endpoints : can(regex("^[a-z0-9.-]+$", s))])
    error_message = "interface_endpoints entries are service suffixes such as \"sqs\" or \"ecr.dkr\"."
  }
}

variable "interface_endpoint_az_count" {
  description = "Number of AZs that get interface endpoint ENIs (each endpoint costs per AZ-hour); null means every AZ. One is enough for staging, production keeps one per AZ."
  type        = number
  default     = null

  validation {
    condition     = var.interface_endpoint_az_count == null || try(var.interface_endpoint_az_count >= 1 && var.interface_endpoint_az_count <= 4, false)
    error_message = "interface_endpoint_az_count must be null or between 1 and 4."
  }
}

variable "kms_key_arn" {
  description = "KMS key ARN encrypting the flow-log group."
  type        = string

  validation {
    condition     = can(regex("^arn:aws[a-z-]*:kms:", var.kms_key_arn))
    error_message = "kms_key_arn must be a KMS key ARN."
  }
}

variable "flow_log_retention_days" {
  description = "Retention of VPC flow logs in CloudWatch Logs."
  type        = number
  default     = 365

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.flow_log_retention_days)
    error_message = "flow_log_retention_days must be a value CloudWatch Logs accepts (e.g. 14, 30, 90, 365)."
  }
}

variable "flow_log_traffic_type" {
  description = "Which traffic the flow logs record."
  type        = string
  default     = "REJECT"

  validation {
    condition     = contains(["ACCEPT", "REJECT", "ALL"], var.flow_log_traffic_type)
    error_message = "flow_log_traffic_type must be ACCEPT, REJECT or ALL."
  }
}

variable "tags" {
  description = "Tags applied to every resource."
  type        = map(string)
  default     = {}
}
