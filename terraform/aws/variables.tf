variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "tierscan"
}

variable "image" {
  description = "The tierscan container image (built from the repo's Dockerfile), pinned by digest: REPO@sha256:..."
  type        = string
}

variable "targets" {
  description = "What to scan: s3:// URIs; [\"s3://*\"] scans every bucket the role can list."
  type        = list(string)
  default     = ["s3://*"]
}

variable "scanned_buckets" {
  description = "Bucket names (or name globs) the role may list and read. No default: [\"*\"] grants read on every bucket in the account, which targets = [\"s3://*\"] needs; say so explicitly."
  type        = list(string)
  validation {
    condition     = length(var.scanned_buckets) > 0
    error_message = "scanned_buckets names at least one bucket ([\"*\"] for every bucket in the account)."
  }
}

variable "results_bucket" {
  description = "Name of the results bucket this module creates (SSE-KMS, versioned, private, TLS only); the only bucket the job writes to."
  type        = string
}

variable "results_noncurrent_days" {
  description = "Days an overwritten results object (latest, shard catalogs) is kept as a noncurrent version."
  type        = number
  default     = 90
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
  description = "Parallel scan tasks (an AWS Batch array job when more than 1), merged by one more job."
  type        = number
  default     = 4
  validation {
    condition     = var.shards >= 1 && var.shards <= 10000 && floor(var.shards) == var.shards
    error_message = "shards is a whole number from 1 to 10000 (AWS Batch's array size limit)."
  }
}

variable "schedule_expression" {
  description = "EventBridge Scheduler expression for the scan."
  type        = string
  default     = "cron(0 2 ? * SUN *)"
}

variable "schedule_timezone" {
  description = "Time zone of the schedule expression."
  type        = string
  default     = "Asia/Hong_Kong"
}

variable "vcpu" {
  description = "vCPUs per Fargate task (fingerprinting uses one process per vCPU)."
  type        = number
  default     = 2
}

variable "memory_mib" {
  description = "Memory per Fargate task, MiB."
  type        = number
  default     = 4096
}

variable "subnet_ids" {
  description = "Private subnets for the Fargate tasks (with a NAT gateway or S3, ECR and Logs endpoints)."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups for the Fargate tasks; outbound HTTPS is all they need."
  type        = list(string)
}

variable "log_retention_days" {
  description = "CloudWatch Logs retention of the job logs."
  type        = number
  default     = 365
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default     = {}
}
