# Plans and applies an environment against a mocked AWS provider: every expression,
# for_each, conditional and variable validation is evaluated, nothing reaches AWS.
# scripts/check-infra copies this file into envs/<env>/tests/ of a scratch copy of the tree and
# runs `terraform test` there when an AWS provider is available without downloading it.

mock_provider "aws" {
  mock_data "aws_caller_identity" {
    defaults = { account_id = "111111111111", arn = "arn:aws:iam::111111111111:user/test", user_id = "AIDTEST" }
  }
  mock_data "aws_partition" {
    defaults = { partition = "aws", dns_suffix = "amazonaws.com" }
  }
  mock_data "aws_region" {
    defaults = { id = "eu-central-1", name = "eu-central-1" }
  }
  mock_data "aws_availability_zones" {
    defaults = { names = ["eu-central-1a", "eu-central-1b"], zone_ids = ["euc1-az2", "euc1-az3"] }
  }
  mock_data "aws_iam_policy_document" {
    defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
  }
  mock_data "aws_elb_service_account" {
    defaults = { arn = "arn:aws:iam::054676820928:root" }
  }
  mock_resource "aws_cloudwatch_log_group" {
    defaults = { arn = "arn:aws:logs:eu-central-1:111111111111:log-group:/geoflow/test" }
  }
  mock_resource "aws_sns_topic" {
    defaults = { arn = "arn:aws:sns:eu-central-1:111111111111:geoflow-alarms" }
  }
  mock_resource "aws_cloudwatch_event_rule" {
    defaults = { arn = "arn:aws:events:eu-central-1:111111111111:rule/geoflow-test" }
  }
  mock_resource "aws_lb" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-central-1:111111111111:loadbalancer/app/geoflow/0123456789abcdef", arn_suffix = "app/geoflow/0123456789abcdef", dns_name = "geoflow-alb-123.eu-central-1.elb.amazonaws.com" }
  }
  mock_resource "aws_lb_target_group" {
    defaults = { arn = "arn:aws:elasticloadbalancing:eu-central-1:111111111111:targetgroup/gfapi/0123456789abcdef", arn_suffix = "targetgroup/gfapi/0123456789abcdef" }
  }
  mock_resource "aws_ecs_task_definition" {
    defaults = { arn = "arn:aws:ecs:eu-central-1:111111111111:task-definition/geoflow-test:1" }
  }
  mock_resource "aws_ecs_service" {
    defaults = { id = "arn:aws:ecs:eu-central-1:111111111111:service/geoflow/test" }
  }
  mock_resource "aws_kms_key" {
    defaults = { arn = "arn:aws:kms:eu-central-1:111111111111:key/00000000-0000-0000-0000-000000000000" }
  }
  mock_resource "aws_sqs_queue" {
    defaults = { arn = "arn:aws:sqs:eu-central-1:111111111111:geoflow-test", url = "https://sqs.eu-central-1.amazonaws.com/111111111111/geoflow-test" }
  }
  mock_resource "aws_s3_bucket" {
    defaults = { arn = "arn:aws:s3:::geoflow-test-bucket" }
  }
  mock_resource "aws_ecr_repository" {
    defaults = { arn = "arn:aws:ecr:eu-central-1:111111111111:repository/geoflow", repository_url = "111111111111.dkr.ecr.eu-central-1.amazonaws.com/geoflow" }
  }
  mock_resource "aws_ecs_cluster" {
    defaults = { arn = "arn:aws:ecs:eu-central-1:111111111111:cluster/geoflow" }
  }
  mock_resource "aws_iam_role" {
    defaults = { arn = "arn:aws:iam::111111111111:role/geoflow-test" }
  }
  mock_resource "aws_iam_openid_connect_provider" {
    defaults = { arn = "arn:aws:iam::111111111111:oidc-provider/token.actions.githubusercontent.com" }
  }
  mock_resource "aws_db_instance" {
    defaults = {
      address            = "geoflow.abcdefghijkl.eu-central-1.rds.amazonaws.com"
      port               = 5432
      master_user_secret = [{ secret_arn = "arn:aws:secretsmanager:eu-central-1:111111111111:secret:rds-db-credentials-AbCdEf", kms_key_id = "k", secret_status = "active" }]
    }
  }
  mock_resource "aws_secretsmanager_secret" {
    defaults = { arn = "arn:aws:secretsmanager:eu-central-1:111111111111:secret:geoflow-api-tokens-AbCdEf" }
  }
}

variables {
  region              = "eu-central-1"
  allowed_account_ids = ["111111111111"]
  certificate_arn     = "arn:aws:acm:eu-central-1:111111111111:certificate/00000000-0000-0000-0000-000000000000"
  image_tag           = "0123456789abcdef"
  github_repository   = "example-org/geoflow"
  alarm_emails        = ["oncall@example.org"]
}

run "apply_with_mocked_aws" {
  command = apply

  assert {
    condition     = length(output.task_definition_families) == 3
    error_message = "api, worker and report task definition families expected"
  }

  assert {
    condition     = output.service_names == { api = "api", worker = "worker" }
    error_message = "api and worker services expected"
  }

  assert {
    condition     = alltrue([for role, family in output.task_definition_families : startswith(family, "geoflow-") && endswith(family, "-${role}")])
    error_message = "task definition families are geoflow-<environment>-<role>"
  }
}

run "mutable_image_tag_is_rejected" {
  command = plan

  variables {
    image_tag = "latest"
  }

  expect_failures = [var.image_tag]
}

run "wildcard_repository_is_rejected" {
  command = plan

  variables {
    github_repository = "example-org/*"
  }

  expect_failures = [var.github_repository]
}
