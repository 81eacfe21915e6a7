output "results_uri" {
  description = "Where each run's outputs go; RESULTS/latest names the last complete run."
  value       = local.results_uri
}

output "identity_principal_id" {
  description = "The managed identity the jobs run as (Storage Blob Data Reader on the scanned accounts)."
  value       = azurerm_user_assigned_identity.job.principal_id
}

output "scan_job_ids" {
  description = "The shards' Container Apps jobs."
  value       = azurerm_container_app_job.scan[*].id
}

output "merge_job_id" {
  description = "The merge's Container Apps job."
  value       = azurerm_container_app_job.merge.id
}
