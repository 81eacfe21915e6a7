variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "tierscan"
}

variable "resource_group_name" {
  description = "Resource group of the job, its environment, identity and logs."
  type        = string
}

variable "location" {
  description = "Region of the job (eastasia is Hong Kong; chinanorth3 with environment = \"china\")."
  type        = string
  default     = "eastasia"
}

variable "environment" {
  description = "\"public\" for global Azure, \"china\" for Azure China (21Vianet): a separate deployment with its own subscription and credentials."
  type        = string
  default     = "public"
  validation {
    condition     = contains(["public", "china"], var.environment)
    error_message = "environment is \"public\" or \"china\"."
  }
}

variable "image" {
  description = "The tierscan container image, pinned by digest: REGISTRY/tierscan@sha256:..."
  type        = string
}

variable "targets" {
  description = "What to scan: az://ACCOUNT/CONTAINER[/PREFIX] or az://ACCOUNT/* URIs."
  type        = list(string)
}

variable "scanned_storage_account_ids" {
  description = "Resource IDs of the scanned storage accounts; the identity gets Storage Blob Data Reader on each."
  type        = list(string)
}

variable "results_storage_account_name" {
  description = "Name of the results storage account this module creates (3-24 lowercase letters and digits, globally unique): HTTPS and TLS 1.2 only, no public access, no shared keys, versioning and soft delete."
  type        = string
}

variable "results_container" {
  description = "The private results container this module creates; the identity may read and write (not delete) blobs under results_prefix in it and nothing else."
  type        = string
}

variable "results_replication_type" {
  description = "Replication of the results account. ZRS keeps copies in the account's region; GRS/GZRS would copy the inventory to the paired region, a data-residency decision."
  type        = string
  default     = "ZRS"
}

variable "results_soft_delete_days" {
  description = "Days a deleted or overwritten results blob, or a deleted container, can be restored."
  type        = number
  default     = 30
  validation {
    condition     = var.results_soft_delete_days >= 1 && var.results_soft_delete_days <= 365
    error_message = "results_soft_delete_days is from 1 to 365."
  }
}

variable "results_prefix" {
  description = "Prefix in the results container: runs/<UTC time>/, latest and shards/ go under it."
  type        = string
  default     = "tierscan"
}

variable "config_yaml" {
  description = "The tierscan config (YAML), passed as TIERSCAN_CONFIG. Empty: the defaults."
  type        = string
  default     = ""
}

variable "shards" {
  description = "Scan jobs that run in parallel, each with --shard I/N (Container Apps jobs give replicas no index)."
  type        = number
  default     = 2
  validation {
    condition     = var.shards >= 1 && var.shards <= 50 && floor(var.shards) == var.shards
    error_message = "shards is a whole number from 1 to 50."
  }
}

variable "scan_cron" {
  description = "Cron expression (UTC) that starts the shards."
  type        = string
  default     = "0 18 * * 6"
}

variable "merge_cron" {
  description = "Cron expression (UTC) of the merge: late enough after scan_cron for every shard to finish."
  type        = string
  default     = "0 0 * * 0"
}

variable "cpu" {
  description = "vCPUs per job replica."
  type        = number
  default     = 2
}

variable "memory" {
  description = "Memory per job replica (Container Apps pairs it with cpu, e.g. 2 vCPU with 4Gi)."
  type        = string
  default     = "4Gi"
}

variable "log_retention_days" {
  description = "Log Analytics retention."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
