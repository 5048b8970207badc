output "bucket_name" {
  description = "Name of the data bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the data bucket."
  value       = aws_s3_bucket.this.arn
}

output "storage_url" {
  description = "Value for GEOFLOW_STORAGE_URL."
  value       = "s3://${aws_s3_bucket.this.id}"
}

output "raw_prefix" {
  description = "Prefix of uploads."
  value       = var.raw_prefix
}

output "log_bucket_name" {
  description = "Name of the access-log bucket."
  value       = aws_s3_bucket.logs.id

  # The ALB checks write access when access logging is switched on.
  depends_on = [aws_s3_bucket_policy.logs]
}

output "alb_log_prefix" {
  description = "Prefix for ALB access logs in the log bucket."
  value       = var.alb_log_prefix
}
