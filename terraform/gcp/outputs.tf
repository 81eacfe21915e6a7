output "results_uri" {
  description = "Where each run's outputs go; RESULTS/latest names the last complete run."
  value       = local.results_uri
}

output "job_service_account" {
  description = "The identity the scan runs as: objectViewer on the scanned buckets, writer under the results prefix."
  value       = google_service_account.job.email
}

output "workflow_id" {
  description = "The workflow that runs the shards, then the merge; execute it by hand for an unscheduled scan."
  value       = google_workflows_workflow.scan.id
}

output "scan_job_name" {
  description = "The Cloud Run Job of the shards."
  value       = google_cloud_run_v2_job.scan.name
}
