# Everything that differs between environments: sizes and protection settings.

locals {
  settings = {
    environment    = "staging"
    vpc_cidr_block = "10.40.0.0/16"
    az_letters     = ["a", "b"]

    # Interface VPC endpoints: AZs with endpoint ENIs
    endpoint_az_count = 1

    # Sizes
    api_cpu                  = 256
    api_memory               = 512
    api_desired_count        = 1
    worker_cpu               = 512
    worker_memory            = 1024
    worker_min_count         = 1
    worker_max_count         = 2
    worker_use_fargate_spot  = true
    report_cpu               = 256
    report_memory            = 512
    db_instance_class        = "db.t4g.micro"
    db_allocated_storage     = 20
    db_max_allocated_storage = 50
    db_max_connections_alarm = 60

    # Retention
    log_retention_days                 = 14
    access_log_retention_days          = 30
    raw_expiration_days                = 90
    noncurrent_version_expiration_days = 7
    db_backup_retention_days           = 3

    # Protection
    db_multi_az                 = false
    deletion_protection         = false
    force_destroy               = true
    kms_deletion_window_days    = 7
    secret_recovery_window_days = 7
  }
}
