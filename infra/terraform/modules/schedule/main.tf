data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  tasks_arn = "arn:${data.aws_partition.current.partition}:ecs:${data.aws_region.current.id}:${data.aws_caller_identity.current.account_id}:task/${var.cluster_name}/*"

  # RunTask is granted on every revision of the family (the schedule starts the latest one).
  task_definition_revisions = "${var.task_definition_family_arn}:*"
}

# Runs the one-shot report task daily. The container's RUN_DATE defaults to yesterday (UTC) at
# run time, which is the day that just closed when the schedule fires after midnight UTC.
# run_date_override pins a date (backfills); leave it null for the daily run.
resource "aws_scheduler_schedule" "report" {
  name                         = "${var.name}-daily-report"
  description                  = "Daily geoflow report: writes reports/<YYYY-MM-DD>.json"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = "UTC"
  state                        = var.enabled ? "ENABLED" : "DISABLED"
  kms_key_arn                  = var.kms_key_arn

  flexible_time_window {
    mode = "OFF"
  }

  target {
    arn      = var.cluster_arn
    role_arn = aws_iam_role.scheduler.arn

    # For ECS targets the input is passed to RunTask as the task overrides.
    input = var.run_date_override == null ? null : jsonencode({
      containerOverrides = [{
        name        = var.container_name
        environment = [{ name = "RUN_DATE", value = var.run_date_override }]
      }]
    })

    ecs_parameters {
      task_definition_arn     = var.task_definition_family_arn
      launch_type             = "FARGATE"
      platform_version        = "LATEST"
      task_count              = 1
      propagate_tags          = "TASK_DEFINITION"
      enable_ecs_managed_tags = true

      network_configuration {
        subnets          = var.subnet_ids
        security_groups  = var.security_group_ids
        assign_public_ip = false
      }
    }

    retry_policy {
      maximum_event_age_in_seconds = 3600
      maximum_retry_attempts       = 3
    }

    dead_letter_config {
      arn = aws_sqs_queue.dlq.arn
    }
  }
}

# Invocations the scheduler could not deliver (e.g. RunTask throttled or misconfigured).
resource "aws_sqs_queue" "dlq" {
  name                      = "${var.name}-report-schedule-dlq"
  message_retention_seconds = 1209600
  kms_master_key_id         = var.kms_key_arn

  tags = merge(var.tags, { Name = "${var.name}-report-schedule-dlq" })
}

data "aws_iam_policy_document" "assume" {
  statement {
    sid     = "EventBridgeScheduler"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [data.aws_caller_identity.current.account_id]
    }
  }
}

resource "aws_iam_role" "scheduler" {
  name_prefix        = "${substr(var.name, 0, 24)}-sched-"
  description        = "EventBridge Scheduler role: runs the geoflow report task"
  assume_role_policy = data.aws_iam_policy_document.assume.json

  tags = var.tags
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    sid       = "RunReportTask"
    actions   = ["ecs:RunTask"]
    resources = [var.task_definition_family_arn, local.task_definition_revisions]

    condition {
      test     = "ArnEquals"
      variable = "ecs:cluster"
      values   = [var.cluster_arn]
    }
  }

  statement {
    sid       = "TagTasks"
    actions   = ["ecs:TagResource"]
    resources = [local.tasks_arn]

    condition {
      test     = "StringEquals"
      variable = "ecs:CreateAction"
      values   = ["RunTask"]
    }
  }

  statement {
    sid       = "PassTaskRoles"
    actions   = ["iam:PassRole"]
    resources = [var.task_role_arn, var.execution_role_arn]

    condition {
      test     = "StringEquals"
      variable = "iam:PassedToService"
      values   = ["ecs-tasks.amazonaws.com"]
    }
  }

  statement {
    sid       = "DeadLetters"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.dlq.arn]
  }

  statement {
    sid       = "EncryptedDeadLetters"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [var.kms_key_arn]
  }
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "run-report-task"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}
