# Everything that differs between environments: sizes and protection settings.

locals {
  settings = {
    environment    = "prod"
    vpc_cidr_block = "10.50.0.0/16"
    az_letters     = ["a", "b"]

    # Interface VPC endpoints: AZs with endpoint ENIs
    endpoint_az_count = 2

    # Sizes
    api_cpu                  = 512
    api_memory               = 1024
    api_desired_count        = 2
    worker_cpu               = 1024
    worker_memory            = 2048
    worker_min_count         = 1
    worker_max_count         = 6
    worker_use_fargate_spot  = false
    report_cpu               = 512
    report_memory            = 1024
    db_instance_class        = "db.m7g.large"
    db_allocated_storage     = 100
    db_max_allocated_storage = 500
    db_max_connections_alarm = 400

    # Retention
    log_retention_days                 = 365
    access_log_retention_days          = 365
    raw_expiration_days                = 365
    noncurrent_version_expiration_days = 30
    db_backup_retention_days           = 14

    # Protection
    db_multi_az                 = true
    deletion_protection         = true
    force_destroy               = false
    kms_deletion_window_days    = 30
    secret_recovery_window_days = 30
  }
}
