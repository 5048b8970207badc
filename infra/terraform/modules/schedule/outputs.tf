output "schedule_arn" {
  description = "ARN of the daily report schedule."
  value       = aws_scheduler_schedule.report.arn
}

output "schedule_name" {
  description = "Name of the daily report schedule."
  value       = aws_scheduler_schedule.report.name
}

output "dead_letter_queue_name" {
  description = "Queue receiving invocations the scheduler could not deliver."
  value       = aws_sqs_queue.dlq.name
}

output "role_arn" {
  description = "Role EventBridge Scheduler assumes."
  value       = aws_iam_role.scheduler.arn
}
