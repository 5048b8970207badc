output "cluster_name" {
  description = "ECS cluster name."
  value       = aws_ecs_cluster.this.name
}

output "cluster_arn" {
  description = "ECS cluster ARN."
  value       = aws_ecs_cluster.this.arn
}

output "service_names" {
  description = "ECS service names by role."
  value = {
    api    = aws_ecs_service.api.name
    worker = aws_ecs_service.worker.name
  }
}

output "service_arns" {
  description = "ECS service ARNs by role."
  value = {
    api    = aws_ecs_service.api.id
    worker = aws_ecs_service.worker.id
  }
}

output "task_definition_families" {
  description = "Task definition families by role (api, worker, report)."
  value       = { for k, td in aws_ecs_task_definition.this : k => td.family }
}

output "task_definition_arns" {
  description = "Task definition ARNs (with the revision Terraform registered) by role."
  value       = { for k, td in aws_ecs_task_definition.this : k => td.arn }
}

output "report_task_definition_family_arn" {
  description = "ARN of the report family without revision: running it starts the latest active revision."
  value       = "arn:${local.partition}:ecs:${local.region}:${local.account_id}:task-definition/${aws_ecs_task_definition.this["report"].family}"
}

output "execution_role_arn" {
  description = "ECS execution role (the only role reading the secrets)."
  value       = aws_iam_role.execution.arn
}

output "task_role_arns" {
  description = "Task role ARNs by role."
  value       = local.task_role_arns
}

output "security_group_ids" {
  description = "Task security groups by role (database ingress sources)."
  value       = local.task_security_groups
}

output "alb_security_group_id" {
  description = "Security group of the ALB."
  value       = aws_security_group.alb.id
}

output "alb_dns_name" {
  description = "DNS name of the ALB (point the API's DNS record here)."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Hosted zone of the ALB (for an alias record)."
  value       = aws_lb.this.zone_id
}

output "alb_arn_suffix" {
  description = "ALB ARN suffix (CloudWatch dimension LoadBalancer)."
  value       = aws_lb.this.arn_suffix
}

output "target_group_arn_suffix" {
  description = "api target group ARN suffix (CloudWatch dimension TargetGroup)."
  value       = aws_lb_target_group.api.arn_suffix
}

output "log_group_names" {
  description = "Container log groups by role."
  value       = { for k, g in aws_cloudwatch_log_group.this : k => g.name }
}

output "api_tokens_secret_arn" {
  description = "Secret holding the API bearer tokens (value set out of band)."
  value       = aws_secretsmanager_secret.api_tokens.arn
}
