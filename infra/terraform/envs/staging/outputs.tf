# What the deploy pipeline needs (terraform output -json).

output "region" {
  description = "AWS region."
  value       = var.region
}

output "ecr_repository_url" {
  description = "Push the image here."
  value       = module.registry.repository_url
}

output "cluster_name" {
  description = "ECS cluster."
  value       = module.service.cluster_name
}

output "service_names" {
  description = "ECS services by role (api, worker)."
  value       = module.service.service_names
}

output "task_definition_families" {
  description = "Task definition families by role (api, worker, report)."
  value       = module.service.task_definition_families
}

output "alb_dns_name" {
  description = "ALB host name (CNAME/alias target of the API's DNS name)."
  value       = module.service.alb_dns_name
}

output "deploy_role_arn" {
  description = "Role the GitHub environment assumes through OIDC."
  value       = module.ci_access.deploy_role_arn
}

output "bucket_name" {
  description = "Data bucket (uploads under raw/, reports under reports/)."
  value       = module.storage.bucket_name
}

output "queue_url" {
  description = "Ingest queue URL."
  value       = module.queue.queue_url
}

output "dlq_url" {
  description = "Dead-letter queue URL (inspect and redrive from here)."
  value       = module.queue.dlq_url
}

output "private_subnet_ids" {
  description = "Subnets for one-off tasks (e.g. geoflow migrate)."
  value       = module.network.private_subnet_ids
}

output "task_security_group_ids" {
  description = "Task security groups by role; one-off database tasks use the report one."
  value       = module.service.security_group_ids
}

output "api_tokens_secret_arn" {
  description = "Secret holding the API bearer tokens (set its value out of band)."
  value       = module.service.api_tokens_secret_arn
}

output "alarm_topic_arn" {
  description = "SNS topic of the alarms."
  value       = module.observability.alarm_topic_arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard."
  value       = module.observability.dashboard_name
}
