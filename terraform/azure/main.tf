# tierscan on Azure: Container Apps jobs with schedule triggers. Container Apps gives a job's replicas no
# index, so each shard is its own job with an explicit --shard I/N, all on `scan_cron`; the merge job runs on
# `merge_cron`, after the shards' window. A shard that did not finish leaves its previous run's part in
# RESULTS/shards/, which still describes its objects as of that run. The jobs run as a user-assigned managed
# identity with Storage Blob Data Reader on the scanned accounts and read/write (no delete) under the results
# prefix of the results container, which this module creates and hardens.

data "azurerm_resource_group" "this" {
  name = var.resource_group_name
}

locals {
  results_account = azurerm_storage_account.results.name
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

# ---- the results account and container -----------------------------------------------------------------
# They hold the exact-GPS inventory and the catalogs later runs trust: private (no public access, no shared
# keys: Entra ID only), HTTPS with TLS 1.2 or later, blob versioning and soft delete of blobs and containers,
# so an overwritten `latest` or shard catalog, or a deleted container, can be recovered.

resource "azurerm_storage_account" "results" {
  #checkov:skip=CKV_AZURE_206: geo-replication copies the inventory (exact GPS) to the paired region, possibly another jurisdiction: a data-governance choice, not a default
  #checkov:skip=CKV_AZURE_35: Container Apps jobs outside a VNet reach the account on its public endpoint; access is by Entra ID only (shared keys disabled)
  #checkov:skip=CKV_AZURE_59: same: the jobs need the public endpoint unless the environment is VNet-integrated with a private endpoint
  #checkov:skip=CKV2_AZURE_33: same: a private endpoint needs a VNet this module does not create
  #checkov:skip=CKV2_AZURE_1: encrypted at rest with Microsoft-managed keys (and infrastructure encryption); a customer-managed key needs a Key Vault this module does not create
  #checkov:skip=CKV_AZURE_33: the account holds no queues
  name                              = var.results_storage_account_name
  resource_group_name               = var.resource_group_name
  location                          = var.location
  account_kind                      = "StorageV2"
  account_tier                      = "Standard"
  account_replication_type          = var.results_replication_type
  min_tls_version                   = "TLS1_2"
  https_traffic_only_enabled        = true
  allow_nested_items_to_be_public   = false
  shared_access_key_enabled         = false
  local_user_enabled                = false
  infrastructure_encryption_enabled = true
  blob_properties {
    versioning_enabled = true
    delete_retention_policy {
      days = var.results_soft_delete_days
    }
    container_delete_retention_policy {
      days = var.results_soft_delete_days
    }
  }
  sas_policy {
    expiration_period = "01.00:00:00"
  }
  tags = var.tags
}

resource "azurerm_storage_container" "results" {
  #checkov:skip=CKV2_AZURE_21: blob read, write and delete logs go to Log Analytics through the diagnostic setting below (storage insights needs an account key, which the account disables)
  name                  = var.results_container
  storage_account_id    = azurerm_storage_account.results.id
  container_access_type = "private"
}

# Read and write (create or overwrite) blobs; no delete, no listing. Overwrites keep the old version.
resource "azurerm_role_definition" "results_writer" {
  name        = "${var.name}-results-writer"
  scope       = data.azurerm_resource_group.this.id
  description = "tierscan: read and write blobs (assigned on the results container, under the results prefix only)"
  permissions {
    data_actions = [
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read",
      "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write",
    ]
  }
  assignable_scopes = [data.azurerm_resource_group.this.id]
}

resource "azurerm_role_assignment" "results" {
  scope              = "${azurerm_storage_account.results.id}/blobServices/default/containers/${azurerm_storage_container.results.name}"
  role_definition_id = azurerm_role_definition.results_writer.role_definition_resource_id
  principal_id       = azurerm_user_assigned_identity.job.principal_id
  principal_type     = "ServicePrincipal"
  # ABAC: every action the role allows applies only to blobs whose path starts with the results prefix.
  condition_version = "2.0"
  condition         = <<-EOT
    (
     (
      !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'})
      AND
      !(ActionMatches{'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write'})
     )
     OR
     (
      @Resource[Microsoft.Storage/storageAccounts/blobServices/containers/blobs:path] StringStartsWith '${var.results_prefix}/'
     )
    )
  EOT
}

resource "azurerm_log_analytics_workspace" "this" {
  name                = var.name
  resource_group_name = var.resource_group_name
  location            = var.location
  sku                 = "PerGB2018"
  retention_in_days   = var.log_retention_days
  tags                = var.tags
}

# Who read, wrote or deleted results blobs, kept for log_retention_days with the jobs' logs.
resource "azurerm_monitor_diagnostic_setting" "results_blobs" {
  name                       = "${var.name}-results-blobs"
  target_resource_id         = "${azurerm_storage_account.results.id}/blobServices/default"
  log_analytics_workspace_id = azurerm_log_analytics_workspace.this.id
  enabled_log {
    category = "StorageRead"
  }
  enabled_log {
    category = "StorageWrite"
  }
  enabled_log {
    category = "StorageDelete"
  }
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
