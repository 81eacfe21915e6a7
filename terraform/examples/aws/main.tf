# Global AWS: scan every bucket the account can list, from Hong Kong (ap-east-1), weekly, in 4 shards.
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
  region = "ap-east-1"
}

variable "image" {
  description = "The tierscan image in ECR, by digest."
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
  results_bucket = "example-tierscan-results"
  targets        = ["s3://*"]
  # The buckets the job may list and read. ["*"] means every bucket in the account, which s3://* needs;
  # name the buckets instead (and list them as targets) to keep the role off everything else.
  scanned_buckets    = ["*"]
  shards             = 4
  subnet_ids         = var.subnet_ids
  security_group_ids = var.security_group_ids
  config_yaml        = <<-YAML
    master:
      prefer: ["s3://hk-golden-*/*"]
    policies:
      packs: [builtin]
  YAML
}

output "results_uri" {
  value = module.tierscan.results_uri
}
