# Google Cloud: scan two buckets from Hong Kong (asia-east2), weekly, in 4 Cloud Run tasks.
terraform {
  required_version = ">= 1.5"
  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.10"
    }
  }
}

variable "project" {
  description = "The project that runs the job."
  type        = string
}

variable "image" {
  description = "The tierscan image in Artifact Registry, by digest."
  type        = string
}

provider "google" {
  project = var.project
  region  = "asia-east2"
}

module "tierscan" {
  source          = "../../gcp"
  project         = var.project
  image           = var.image
  scanned_buckets = ["example-hk-photos", "example-hk-archive"]
  results_bucket  = "example-tierscan-results"
  shards          = 4
}

output "results_uri" {
  value = module.tierscan.results_uri
}
