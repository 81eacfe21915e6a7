# tierscan on Azure: Container Apps jobs with schedule triggers. Container Apps gives a job's replicas no
# index, so each shard is its own job with an explicit --shard I/N, all on `scan_cron`; the merge job runs on
# `merge_cron`, after the shards' window. A shard that did not finish leaves its previous run's part in
# RESULTS/shards/, which still describes its objects as of that run. The jobs run as a user-assigned managed
# identity with Storage Blob Data Reader on the scanned accounts and write access to the results container.

data "azurerm_storage_account" "results" {
  name                = element(split("/", var.results_storage_account_id), 8)
  resource_group_name = element(split("/", var.results_storage_account_id), 4)
}

locals {
  results_account = data.azurerm_storage_account.results.name
  results_uri     = "az://${local.results_account}/${var.results_container}/${var.results_prefix}"
  parts           = [for i in range(var.shards) : "${local.results_uri}/shards/part-${i}-of-${var.shards}.db"]
  # Azure China: other blob and sign-in endpoints; its credentials do not work in global Azure, nor the reverse.
  cloud_env = var.environment == "china" ? {
    TIERSCAN_AZURE_ENDPOINT_SUFFIX = "blob.core.chinacloudapi.cn"
    AZURE_AUTHORITY_HOST           = "https://login.chinacloudapi.cn"
  } : {}
  environment = merge(local.cloud_env, var.config_yaml == "" ? {} : { TIERSCAN_CONFIG = var.config_yaml }, {
    AZURE_CLIENT_ID      = azurerm_user_assigned_identity.job.client_id # DefaultAzureCredential picks this identity
    AZURE_STORAGE_REGION = var.location
  })
}

resource "azurerm_user_assigned_identity" "job" {
  name                = "${var.name}-job"
  resource_group_name = var.resource_group_name
  location            = var.location
  tags                = var.tags
}

resource "azurerm_role_assignment" "reader" {
  for_each             = toset(var.scanned_storage_account_ids)
  scope                = each.value
  role_definition_name = "Storage Blob Data Reader"
  principal_id         = azurerm_user_assigned_identity.job.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_role_assignment" "results" {
  scope                = "${var.results_storage_account_id}/blobServices/default/containers/${var.results_container}"
  role_definition_name = "Storage Blob Data Contributor"
  principal_id         = azurerm_user_assigned_identity.job.principal_id
  principal_type       = "ServicePrincipal"
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

resource "azurerm_container_app_environment" "this" {
  name                       = var.name
  resource_group_name        = var.resource_group_name
  location                   = var.location
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  tags                       = var.tags
}

resource "azurerm_container_app_job" "scan" {
  count                        = var.shards
  name                         = "${var.name}-scan-${count.index}"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = azurerm_container_app_environment.this.id
  replica_timeout_in_seconds   = 86400
  replica_retry_limit          = 1
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.job.id]
  }
  schedule_trigger_config {
    cron_expression          = var.scan_cron
    parallelism              = 1
    replica_completion_count = 1
  }
  template {
    container {
      name   = "scan"
      image  = var.image
      cpu    = var.cpu
      memory = var.memory
      args = concat(["scan"], var.targets,
      ["--shard", "${count.index}/${var.shards}", "--db", "/tmp/part.db", "--results", local.results_uri, "--format", "none"])
      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
  tags = var.tags
}

resource "azurerm_container_app_job" "merge" {
  name                         = "${var.name}-merge"
  resource_group_name          = var.resource_group_name
  location                     = var.location
  container_app_environment_id = azurerm_container_app_environment.this.id
  replica_timeout_in_seconds   = 14400
  replica_retry_limit          = 1
  identity {
    type         = "UserAssigned"
    identity_ids = [azurerm_user_assigned_identity.job.id]
  }
  schedule_trigger_config {
    cron_expression          = var.merge_cron
    parallelism              = 1
    replica_completion_count = 1
  }
  template {
    container {
      name   = "merge"
      image  = var.image
      cpu    = var.cpu
      memory = var.memory
      args   = concat(["merge"], local.parts, ["--db", "/tmp/all.db", "--results", local.results_uri])
      dynamic "env" {
        for_each = local.environment
        content {
          name  = env.key
          value = env.value
        }
      }
    }
  }
  tags = var.tags
}
