# The aws-cn partition (Beijing cn-north-1, Ningxia cn-northwest-1) is a separate deployment: its accounts,
# credentials and ARNs (arn:aws-cn:...) do not cross over from global AWS. The same module works there; it
# takes the partition and DNS suffix from the provider. Apply it with aws-cn credentials, and mirror the
# image into an ECR repository in the China region (global registries are not reachable from there).
terraform {
  required_version = ">= 1.5"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "~> 5.80"
    }
  }
}

provider "aws" {
  region = "cn-north-1"
}

variable "image" {
  description = "The tierscan image in a cn-north-1 ECR repository, by digest."
  type        = string
}

variable "subnet_ids" {
  description = "Private subnets with a route to S3, ECR and CloudWatch Logs."
  type        = list(string)
}

variable "security_group_ids" {
  description = "Security groups allowing outbound HTTPS."
  type        = list(string)
}

module "tierscan" {
  source         = "../../aws"
  image          = var.image
  results_bucket = "example-tierscan-results-cn"
  targets        = ["s3://*"]
  # The buckets the job may list and read. ["*"] means every bucket in the account, which s3://* needs;
  # name the buckets instead (and list them as targets) to keep the role off everything else.
  scanned_buckets    = ["*"]
  shards             = 2
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  schedule_timezone  = "Asia/Shanghai"
}

output "results_uri" {
  value = module.tierscan.results_uri
}
