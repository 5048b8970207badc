data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  image = "${var.repository_url}:${var.image_tag}"

  # The password never enters Terraform: the URL names host, port and database only, and the
  # execution role injects user and password from the RDS-managed secret at task start.
  database_url = "postgres://${var.database_address}:${var.database_port}/${var.database_name}?sslmode=${var.database_sslmode}"

  common_environment = [
    { name = "AWS_REGION", value = local.region },
    { name = "GEOFLOW_DATABASE_URL", value = local.database_url },
    { name = "GEOFLOW_STORAGE_URL", value = "s3://${var.bucket_name}" },
    { name = "GEOFLOW_QUEUE_URL", value = var.queue_url },
    { name = "GEOFLOW_LISTEN", value = "0.0.0.0:${var.container_port}" },
    { name = "GEOFLOW_LOG_FORMAT", value = "json" },
  ]

  database_secrets = [
    { name = "GEOFLOW_DATABASE_USER", valueFrom = "${var.database_secret_arn}:username::" },
    { name = "GEOFLOW_DATABASE_PASSWORD", valueFrom = "${var.database_secret_arn}:password::" },
  ]

  health_check = {
    command     = ["CMD", "geoflow", "healthcheck"]
    interval    = 15
    timeout     = 5
    retries     = 3
    startPeriod = 30
  }

  # Per-role sizing; container details that differ in shape are keyed by role below.
  roles = {
    api    = { command = ["api"], cpu = var.api_cpu, memory = var.api_memory }
    worker = { command = ["worker"], cpu = var.worker_cpu, memory = var.worker_memory }
    report = { command = ["report"], cpu = var.report_cpu, memory = var.report_memory }
  }

  role_secrets = {
    api = concat(local.database_secrets, [
      { name = "GEOFLOW_API_TOKENS", valueFrom = aws_secretsmanager_secret.api_tokens.arn },
    ])
    worker = local.database_secrets
    report = local.database_secrets
  }

  role_extras = {
    # The api serves HTTP and is health-checked; the worker answers the same local check
    # (`geoflow healthcheck` asks the process on GEOFLOW_LISTEN whether it is ready); the
    # one-shot report task has no health check.
    api = {
      portMappings = [{ containerPort = var.container_port, protocol = "tcp" }]
      healthCheck  = local.health_check
    }
    # A filtered for-expression rather than a conditional: the two object shapes differ.
    worker = { for k, v in { healthCheck = local.health_check } : k => v if var.worker_health_check }
    report = {}
  }
}

# --- Cluster ----------------------------------------------------------------------------------

resource "aws_ecs_cluster" "this" {
  name = var.name

  setting {
    name  = "containerInsights"
    value = "enabled"
  }

  tags = merge(var.tags, { Name = var.name })
}

resource "aws_ecs_cluster_capacity_providers" "this" {
  cluster_name       = aws_ecs_cluster.this.name
  capacity_providers = ["FARGATE", "FARGATE_SPOT"]

  default_capacity_provider_strategy {
    capacity_provider = "FARGATE"
    weight            = 1
  }
}

resource "aws_cloudwatch_log_group" "this" {
  #checkov:skip=CKV_AWS_338:Retention is an environment setting (log_retention_days) chosen for cost; prod keeps a year, staging two weeks.
  for_each = local.roles

  name              = "/ecs/${var.name}/${each.key}"
  retention_in_days = var.log_retention_days
  kms_key_id        = var.kms_key_arn

  tags = merge(var.tags, { Name = "${var.name}-${each.key}" })
}

# --- Secret: bearer tokens for write endpoints ------------------------------------------------
# Terraform creates the container only; operators put the value (GEOFLOW_API_TOKENS format) with
# `aws secretsmanager put-secret-value`, so no token is ever in variables or state.

resource "aws_secretsmanager_secret" "api_tokens" {
  #checkov:skip=CKV2_AWS_57:API tokens are issued to producers by operators; rotation is a documented manual procedure (add the new token, redeploy, remove the old one), not a Lambda.
  name_prefix             = "${var.name}/api-tokens-"
  description             = "Bearer tokens accepted by the geoflow API for writes (GEOFLOW_API_TOKENS)"
  kms_key_id              = var.kms_key_arn
  recovery_window_in_days = var.secret_recovery_window_in_days

  tags = merge(var.tags, { Name = "${var.name}-api-tokens" })
}

# --- IAM: one execution role (image pull, logs, secrets) and one task role per service -------

data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    sid     = "EcsTasks"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${substr(var.name, 0, 24)}-exec-"
  description        = "ECS execution role of ${var.name}: pulls the image, writes logs, reads the secrets"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "execution" {
  statement {
    sid       = "EcrAuth"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"] # GetAuthorizationToken has no resource-level permissions.
  }

  statement {
    sid = "PullImage"
    actions = [
      "ecr:BatchCheckLayerAvailability",
      "ecr:BatchGetImage",
      "ecr:GetDownloadUrlForLayer",
    ]
    resources = [var.repository_arn]
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in aws_cloudwatch_log_group.this : "${g.arn}:*"]
  }

  statement {
    sid       = "ReadSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [var.database_secret_arn, aws_secretsmanager_secret.api_tokens.arn]
  }

  statement {
    sid       = "DecryptSecretsAndImages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

resource "aws_iam_role" "api" {
  name_prefix        = "${substr(var.name, 0, 24)}-api-"
  description        = "Task role of the geoflow api: writes raw/ uploads and queues their jobs, reads reports/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "api" {
  # Uploads are written here; deleting a source deletes its object; readiness reads a key here.
  statement {
    sid       = "WriteUploads"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload", "s3:GetObject", "s3:DeleteObject"]
    resources = ["${var.bucket_arn}/${var.raw_prefix}*"]
  }

  statement {
    sid       = "ReadReports"
    actions   = ["s3:GetObject"]
    resources = ["${var.bucket_arn}/${var.reports_prefix}*"]
  }

  # Without ListBucket a missing report (or readiness key) is a 403 instead of a 404.
  statement {
    sid       = "ListReportsAndUploads"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.reports_prefix}*", "${var.raw_prefix}*"]
    }
  }

  # Each upload and deletion queues its own job; readiness reads the queue's attributes.
  statement {
    sid       = "QueueJobs"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes"]
    resources = [var.queue_arn]
  }

  statement {
    sid       = "BucketKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "api" {
  name   = "geoflow-api"
  role   = aws_iam_role.api.id
  policy = data.aws_iam_policy_document.api.json
}

resource "aws_iam_role" "worker" {
  name_prefix        = "${substr(var.name, 0, 24)}-worker-"
  description        = "Task role of the geoflow worker: reads raw/, consumes the ingest queue"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "worker" {
  statement {
    sid       = "ReadUploads"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = ["${var.bucket_arn}/${var.raw_prefix}*"]
  }

  # Without ListBucket an object deleted before it was loaded is a 403 instead of a 404, and
  # the worker could not tell a vanished upload (permanent) from a permission fault.
  statement {
    sid       = "ListUploads"
    actions   = ["s3:ListBucket"]
    resources = [var.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${var.raw_prefix}*"]
    }
  }

  statement {
    sid = "ConsumeQueue"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
    ]
    resources = [var.queue_arn]
  }

  statement {
    sid       = "DecryptObjectsAndMessages"
    actions   = ["kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "worker" {
  name   = "geoflow-worker"
  role   = aws_iam_role.worker.id
  policy = data.aws_iam_policy_document.worker.json
}

resource "aws_iam_role" "report" {
  name_prefix        = "${substr(var.name, 0, 24)}-report-"
  description        = "Task role of the geoflow report task: writes reports/"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "report" {
  statement {
    sid       = "WriteReports"
    actions   = ["s3:PutObject", "s3:AbortMultipartUpload"]
    resources = ["${var.bucket_arn}/${var.reports_prefix}*"]
  }

  statement {
    sid       = "BucketKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "report" {
  name   = "geoflow-report"
  role   = aws_iam_role.report.id
  policy = data.aws_iam_policy_document.report.json
}

locals {
  task_role_arns = {
    api    = aws_iam_role.api.arn
    worker = aws_iam_role.worker.arn
    report = aws_iam_role.report.arn
  }
}

# --- Security groups: internet -> ALB -> api -> database; worker/report -> database -----------

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "ALB of ${var.name}: HTTPS (and HTTP for the redirect) from the internet"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-alb" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb_https" {
  security_group_id = aws_security_group.alb.id
  description       = "HTTPS from the internet"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-alb-https" })
}

resource "aws_vpc_security_group_ingress_rule" "alb_http" {
  #checkov:skip=CKV_AWS_260:Port 80 only answers with a permanent redirect to HTTPS (see aws_lb_listener.http); no content is served over HTTP.
  security_group_id = aws_security_group.alb.id
  description       = "HTTP from the internet, redirected to HTTPS"
  ip_protocol       = "tcp"
  from_port         = 80
  to_port           = 80
  cidr_ipv4         = "0.0.0.0/0"

  tags = merge(var.tags, { Name = "${var.name}-alb-http" })
}

resource "aws_vpc_security_group_egress_rule" "alb_to_api" {
  security_group_id            = aws_security_group.alb.id
  description                  = "To the api tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.api.id

  tags = merge(var.tags, { Name = "${var.name}-alb-to-api" })
}

resource "aws_security_group" "api" {
  name_prefix = "${var.name}-api-"
  description = "geoflow api tasks: ingress from the ALB only"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-api" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "api_from_alb" {
  security_group_id            = aws_security_group.api.id
  description                  = "HTTP from the ALB"
  ip_protocol                  = "tcp"
  from_port                    = var.container_port
  to_port                      = var.container_port
  referenced_security_group_id = aws_security_group.alb.id

  tags = merge(var.tags, { Name = "${var.name}-api-from-alb" })
}

resource "aws_security_group" "worker" {
  name_prefix = "${var.name}-worker-"
  description = "geoflow worker tasks: no ingress"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-worker" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_security_group" "report" {
  #checkov:skip=CKV2_AWS_5:Attached to the scheduled report task by the schedule module (EventBridge Scheduler network configuration), outside this module.
  name_prefix = "${var.name}-report-"
  description = "geoflow report task: no ingress"
  vpc_id      = var.vpc_id

  tags = merge(var.tags, { Name = "${var.name}-report" })

  lifecycle {
    create_before_destroy = true
  }
}

locals {
  task_security_groups = {
    api    = aws_security_group.api.id
    worker = aws_security_group.worker.id
    report = aws_security_group.report.id
  }
}

# Tasks talk to the AWS APIs through the VPC endpoints (HTTPS inside the VPC), to S3 through
# the gateway endpoint, and to PostgreSQL. Nothing else leaves the task.
resource "aws_vpc_security_group_egress_rule" "tasks_to_endpoints" {
  for_each = local.task_security_groups

  security_group_id = each.value
  description       = "HTTPS to the interface VPC endpoints"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = var.vpc_cidr_block

  tags = merge(var.tags, { Name = "${var.name}-${each.key}-to-endpoints" })
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_s3" {
  for_each = local.task_security_groups

  security_group_id = each.value
  description       = "HTTPS to S3 through the gateway endpoint"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  prefix_list_id    = var.s3_prefix_list_id

  tags = merge(var.tags, { Name = "${var.name}-${each.key}-to-s3" })
}

resource "aws_vpc_security_group_egress_rule" "tasks_to_database" {
  for_each = local.task_security_groups

  security_group_id            = each.value
  description                  = "PostgreSQL"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = var.database_security_group_id

  tags = merge(var.tags, { Name = "${var.name}-${each.key}-to-db" })
}

# --- Load balancer ----------------------------------------------------------------------------

resource "aws_lb" "this" {
  #checkov:skip=CKV_AWS_150:Deletion protection is an environment switch (deletion_protection); prod turns it on.
  #checkov:skip=CKV2_AWS_28:No WAF in front of the API: writes need a bearer token and reads are cheap bbox queries; a web ACL (about 10 USD/month plus requests) can be attached later with aws_wafv2_web_acl_association.
  name                       = substr("${var.name}-alb", 0, 32)
  load_balancer_type         = "application"
  internal                   = false
  subnets                    = var.public_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  idle_timeout               = var.alb_idle_timeout

  access_logs {
    enabled = true
    bucket  = var.access_logs_bucket
    prefix  = var.access_logs_prefix
  }

  tags = merge(var.tags, { Name = "${var.name}-alb" })
}

resource "aws_lb_target_group" "api" {
  #checkov:skip=CKV_AWS_378:TLS ends at the ALB; ALB to task traffic stays inside private subnets, limited by security groups to the api port.
  name_prefix          = "gfapi-"
  port                 = var.container_port
  protocol             = "HTTP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 15
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }

  tags = merge(var.tags, { Name = "${var.name}-api" })

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.api.arn
  }

  tags = var.tags
}

resource "aws_lb_listener" "http" {
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"

  default_action {
    type = "redirect"

    redirect {
      port        = "443"
      protocol    = "HTTPS"
      status_code = "HTTP_301"
    }
  }

  tags = var.tags
}

# --- Task definitions -------------------------------------------------------------------------

resource "aws_ecs_task_definition" "this" {
  for_each = local.roles

  family                   = "${var.name}-${each.key}"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = each.value.cpu
  memory                   = each.value.memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = local.task_role_arns[each.key]

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  # Scratch space; the root filesystem is read-only.
  volume {
    name = "tmp"
  }

  container_definitions = jsonencode([
    merge({
      name                   = each.key
      image                  = local.image
      command                = each.value.command
      essential              = true
      user                   = var.container_user
      readonlyRootFilesystem = true
      privileged             = false
      stopTimeout            = var.stop_timeout
      environment            = local.common_environment
      secrets                = local.role_secrets[each.key]
      mountPoints            = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      linuxParameters        = { initProcessEnabled = true, capabilities = { drop = ["ALL"] } }
      ulimits                = [{ name = "nofile", softLimit = 65536, hardLimit = 65536 }]
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.this[each.key].name
          awslogs-region        = local.region
          awslogs-stream-prefix = each.key
          mode                  = "non-blocking"
          max-buffer-size       = "8m"
        }
      }
    }, local.role_extras[each.key])
  ])

  tags = merge(var.tags, { Name = "${var.name}-${each.key}", Role = each.key })
}

# --- Services ---------------------------------------------------------------------------------
# The deploy pipeline registers new task definition revisions and updates the services, so
# Terraform ignores the revision (and the worker's autoscaled count) after creation.

resource "aws_ecs_service" "api" {
  name                               = "api"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this["api"].arn
  desired_count                      = var.api_desired_count
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  health_check_grace_period_seconds  = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.api.id]
    assign_public_ip = false
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.api.arn
    container_name   = "api"
    container_port   = var.container_port
  }

  tags = merge(var.tags, { Name = "${var.name}-api" })

  lifecycle {
    ignore_changes = [task_definition]
  }

  depends_on = [aws_lb_listener.https]
}

resource "aws_ecs_service" "worker" {
  name                               = "worker"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.this["worker"].arn
  desired_count                      = var.worker_min_count
  platform_version                   = "LATEST"
  propagate_tags                     = "SERVICE"
  enable_ecs_managed_tags            = true
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200

  capacity_provider_strategy {
    capacity_provider = var.worker_use_fargate_spot ? "FARGATE_SPOT" : "FARGATE"
    weight            = 1
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.worker.id]
    assign_public_ip = false
  }

  tags = merge(var.tags, { Name = "${var.name}-worker" })

  lifecycle {
    ignore_changes = [task_definition, desired_count]
  }

  depends_on = [aws_ecs_cluster_capacity_providers.this]
}

# --- Worker autoscaling on SQS backlog per task -----------------------------------------------

resource "aws_appautoscaling_target" "worker" {
  service_namespace  = "ecs"
  scalable_dimension = "ecs:service:DesiredCount"
  resource_id        = "service/${aws_ecs_cluster.this.name}/${aws_ecs_service.worker.name}"
  min_capacity       = var.worker_min_count
  max_capacity       = var.worker_max_count

  tags = var.tags
}

resource "aws_appautoscaling_policy" "worker_backlog" {
  name               = "${var.name}-worker-backlog-per-task"
  policy_type        = "TargetTrackingScaling"
  service_namespace  = aws_appautoscaling_target.worker.service_namespace
  scalable_dimension = aws_appautoscaling_target.worker.scalable_dimension
  resource_id        = aws_appautoscaling_target.worker.resource_id

  target_tracking_scaling_policy_configuration {
    target_value       = var.worker_backlog_per_task
    scale_in_cooldown  = 300
    scale_out_cooldown = 60

    customized_metric_specification {
      metrics {
        id          = "visible"
        return_data = false

        metric_stat {
          stat = "Sum"

          metric {
            namespace   = "AWS/SQS"
            metric_name = "ApproximateNumberOfMessagesVisible"

            dimensions {
              name  = "QueueName"
              value = var.queue_name
            }
          }
        }
      }

      metrics {
        id          = "tasks"
        return_data = false

        metric_stat {
          stat = "Average"

          metric {
            namespace   = "ECS/ContainerInsights"
            metric_name = "RunningTaskCount"

            dimensions {
              name  = "ClusterName"
              value = aws_ecs_cluster.this.name
            }

            dimensions {
              name  = "ServiceName"
              value = aws_ecs_service.worker.name
            }
          }
        }
      }

      metrics {
        id          = "backlog_per_task"
        label       = "Visible messages per running worker task"
        expression  = "visible / IF(tasks < 1, 1, tasks)"
        return_data = true
      }
    }
  }
}
