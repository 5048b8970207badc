# Composition of one geoflow environment. This file is identical in every environment;
# what differs (sizes and protection settings) lives in settings.tf.

provider "aws" {
  region              = var.region
  allowed_account_ids = var.allowed_account_ids
}

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  environment = local.settings.environment
  name        = "geoflow-${local.environment}"

  bucket_name = "${local.name}-data-${data.aws_caller_identity.current.account_id}"
  bucket_arn  = "arn:${data.aws_partition.current.partition}:s3:::${local.bucket_name}"

  tags = merge(var.tags, {
    Project     = "geoflow"
    Environment = local.environment
    ManagedBy   = "terraform"
  })
}

module "kms" {
  source = "../../modules/kms"

  name                    = local.name
  deletion_window_in_days = local.settings.kms_deletion_window_days
  tags                    = local.tags
}

module "network" {
  source = "../../modules/network"

  name                        = local.name
  cidr_block                  = local.settings.vpc_cidr_block
  availability_zones          = [for z in local.settings.az_letters : "${var.region}${z}"]
  enable_nat_gateway          = false
  interface_endpoint_az_count = local.settings.endpoint_az_count
  kms_key_arn                 = module.kms.key_arn
  flow_log_retention_days     = local.settings.log_retention_days
  tags                        = local.tags
}

module "queue" {
  source = "../../modules/queue"

  name              = "${local.name}-ingest"
  kms_key_arn       = module.kms.key_arn
  source_bucket_arn = local.bucket_arn
  tags              = local.tags
}

module "storage" {
  source = "../../modules/storage"

  bucket_name                        = local.bucket_name
  kms_key_arn                        = module.kms.key_arn
  queue_arn                          = module.queue.queue_arn
  raw_expiration_days                = local.settings.raw_expiration_days
  noncurrent_version_expiration_days = local.settings.noncurrent_version_expiration_days
  access_log_retention_days          = local.settings.access_log_retention_days
  force_destroy                      = local.settings.force_destroy
  tags                               = local.tags
}

module "registry" {
  source = "../../modules/registry"

  name         = local.name
  kms_key_arn  = module.kms.key_arn
  force_delete = local.settings.force_destroy
  tags         = local.tags
}

module "database" {
  source = "../../modules/database"

  name                       = local.name
  vpc_id                     = module.network.vpc_id
  subnet_ids                 = module.network.private_subnet_ids
  allowed_security_group_ids = module.service.security_group_ids
  kms_key_arn                = module.kms.key_arn
  instance_class             = local.settings.db_instance_class
  allocated_storage          = local.settings.db_allocated_storage
  max_allocated_storage      = local.settings.db_max_allocated_storage
  multi_az                   = local.settings.db_multi_az
  deletion_protection        = local.settings.deletion_protection
  skip_final_snapshot        = !local.settings.deletion_protection
  backup_retention_period    = local.settings.db_backup_retention_days
  tags                       = local.tags
}

module "service" {
  source = "../../modules/service"

  name               = local.name
  vpc_id             = module.network.vpc_id
  vpc_cidr_block     = module.network.vpc_cidr_block
  public_subnet_ids  = module.network.public_subnet_ids
  private_subnet_ids = module.network.private_subnet_ids
  s3_prefix_list_id  = module.network.s3_prefix_list_id

  certificate_arn     = var.certificate_arn
  access_logs_bucket  = module.storage.log_bucket_name
  access_logs_prefix  = module.storage.alb_log_prefix
  deletion_protection = local.settings.deletion_protection

  repository_url = module.registry.repository_url
  repository_arn = module.registry.repository_arn
  image_tag      = var.image_tag

  kms_key_arn                    = module.kms.key_arn
  log_retention_days             = local.settings.log_retention_days
  secret_recovery_window_in_days = local.settings.secret_recovery_window_days

  bucket_name = module.storage.bucket_name
  bucket_arn  = module.storage.bucket_arn
  queue_url   = module.queue.queue_url
  queue_arn   = module.queue.queue_arn
  queue_name  = module.queue.queue_name

  database_address           = module.database.address
  database_port              = module.database.port
  database_name              = module.database.database_name
  database_secret_arn        = module.database.master_user_secret_arn
  database_security_group_id = module.database.security_group_id

  api_cpu                 = local.settings.api_cpu
  api_memory              = local.settings.api_memory
  api_desired_count       = local.settings.api_desired_count
  worker_cpu              = local.settings.worker_cpu
  worker_memory           = local.settings.worker_memory
  worker_min_count        = local.settings.worker_min_count
  worker_max_count        = local.settings.worker_max_count
  worker_use_fargate_spot = local.settings.worker_use_fargate_spot
  report_cpu              = local.settings.report_cpu
  report_memory           = local.settings.report_memory

  tags = local.tags
}

module "schedule" {
  source = "../../modules/schedule"

  name                       = local.name
  cluster_arn                = module.service.cluster_arn
  cluster_name               = module.service.cluster_name
  task_definition_family_arn = module.service.report_task_definition_family_arn
  task_role_arn              = module.service.task_role_arns["report"]
  execution_role_arn         = module.service.execution_role_arn
  subnet_ids                 = module.network.private_subnet_ids
  security_group_ids         = [module.service.security_group_ids["report"]]
  kms_key_arn                = module.kms.key_arn
  tags                       = local.tags
}

module "observability" {
  source = "../../modules/observability"

  name                    = local.name
  kms_key_arn             = module.kms.key_arn
  alarm_emails            = var.alarm_emails
  queue_name              = module.queue.queue_name
  dlq_name                = module.queue.dlq_name
  alb_arn_suffix          = module.service.alb_arn_suffix
  target_group_arn_suffix = module.service.target_group_arn_suffix
  cluster_name            = module.service.cluster_name
  cluster_arn             = module.service.cluster_arn
  worker_service_name     = module.service.service_names["worker"]
  db_instance_identifier  = module.database.instance_identifier
  bucket_name             = module.storage.bucket_name
  rds_max_connections     = local.settings.db_max_connections_alarm
  tags                    = local.tags
}

module "ci_access" {
  source = "../../modules/ci-access"

  name                     = local.name
  github_repository        = var.github_repository
  github_environments      = [local.environment]
  create_oidc_provider     = var.create_github_oidc_provider
  oidc_provider_arn        = var.github_oidc_provider_arn
  repository_arn           = module.registry.repository_arn
  kms_key_arn              = module.kms.key_arn
  cluster_arn              = module.service.cluster_arn
  cluster_name             = module.service.cluster_name
  service_arns             = values(module.service.service_arns)
  task_definition_families = values(module.service.task_definition_families)
  pass_role_arns           = concat([module.service.execution_role_arn], values(module.service.task_role_arns))
  tags                     = local.tags
}
