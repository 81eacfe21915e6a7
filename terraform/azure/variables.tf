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

variable "results_storage_account_id" {
  description = "Resource ID of the storage account holding the results container."
  type        = string
}

variable "results_container" {
  description = "The results container; the identity gets Storage Blob Data Contributor on it and nothing else writable."
  type        = string
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
