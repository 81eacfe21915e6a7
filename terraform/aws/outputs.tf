output "results_uri" {
  description = "Where each run's outputs go; RESULTS/latest names the last complete run."
  value       = local.results_uri
}

output "job_role_arn" {
  description = "The read-only role the scan runs as."
  value       = aws_iam_role.job.arn
}

output "state_machine_arn" {
  description = "The workflow that runs the shards, then the merge; start it by hand for an unscheduled scan."
  value       = aws_sfn_state_machine.scan.arn
}

output "job_queue_arn" {
  description = "The AWS Batch job queue."
  value       = aws_batch_job_queue.this.arn
}

output "log_group_name" {
  description = "CloudWatch log group of the scan and merge jobs."
  value       = aws_cloudwatch_log_group.jobs.name
}
