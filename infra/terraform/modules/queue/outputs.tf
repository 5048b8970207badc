output "queue_arn" {
  description = "ARN of the ingest queue (available once its policy admits the bucket)."
  value       = aws_sqs_queue.this.arn

  # S3 validates the destination when the notification is created.
  depends_on = [aws_sqs_queue_policy.this]
}

output "queue_url" {
  description = "URL of the ingest queue (GEOFLOW_QUEUE_URL)."
  value       = aws_sqs_queue.this.id
}

output "queue_name" {
  description = "Name of the ingest queue."
  value       = aws_sqs_queue.this.name
}

output "dlq_arn" {
  description = "ARN of the dead-letter queue."
  value       = aws_sqs_queue.dlq.arn
}

output "dlq_url" {
  description = "URL of the dead-letter queue."
  value       = aws_sqs_queue.dlq.id
}

output "dlq_name" {
  description = "Name of the dead-letter queue."
  value       = aws_sqs_queue.dlq.name
}
