output "deploy_role_arn" {
  description = "Role for aws-actions/configure-aws-credentials (role-to-assume)."
  value       = aws_iam_role.deploy.arn
}

output "oidc_provider_arn" {
  description = "GitHub OIDC provider ARN (pass it to other environments in the same account)."
  value       = local.oidc_provider_arn
}
