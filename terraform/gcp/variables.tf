variable "project" {
  description = "The project that runs the job (the scanned buckets may live in others)."
  type        = string
}

variable "region" {
  description = "Region of the Cloud Run jobs, the workflow and the schedule (asia-east2 is Hong Kong)."
  type        = string
  default     = "asia-east2"
}

variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "tierscan"
}

variable "image" {
  description = "The tierscan container image in Artifact Registry, pinned by digest: REGION-docker.pkg.dev/...@sha256:..."
  type        = string
}

variable "scanned_buckets" {
  description = "The buckets to scan; the job's service account gets objectViewer on each and nothing else on them."
  type        = list(string)
}

variable "results_bucket" {
  description = "Name of the results bucket this module creates (uniform access, public access prevented, versioned), in var.region."
  type        = string
}

variable "results_noncurrent_days" {
  description = "Days an overwritten results object (latest, shard catalogs) is kept as a noncurrent version."
  type        = number
  default     = 90
}

variable "log_retention_days" {
  description = "Retention of the jobs' and the workflow's logs (their own log bucket), days."
  type        = number
  default     = 365
}

variable "results_prefix" {
  description = "Prefix under the results bucket: runs/<UTC time>/, latest and shards/ go under it."
  type        = string
  default     = "tierscan"
}

variable "config_yaml" {
  description = "The tierscan config (YAML), passed as TIERSCAN_CONFIG. Empty: the defaults."
  type        = string
  default     = ""
}

variable "shards" {
  description = "Cloud Run Job tasks that scan in parallel (each reads CLOUD_RUN_TASK_INDEX/COUNT), then one merge task."
  type        = number
  default     = 4
  validation {
    condition     = var.shards >= 1 && var.shards <= 10000 && floor(var.shards) == var.shards
    error_message = "shards is a whole number from 1 to 10000 (Cloud Run's task count limit)."
  }
}

variable "schedule" {
  description = "Cloud Scheduler cron expression for the scan."
  type        = string
  default     = "0 2 * * 0"
}

variable "time_zone" {
  description = "Time zone of the schedule."
  type        = string
  default     = "Asia/Hong_Kong"
}

variable "cpu" {
  description = "vCPUs per task (fingerprinting uses one process per vCPU)."
  type        = string
  default     = "2"
}

variable "memory" {
  description = "Memory per task."
  type        = string
  default     = "4Gi"
}

variable "labels" {
  description = "Labels for the resources that take them."
  type        = map(string)
  default     = {}
}
