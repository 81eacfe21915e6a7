# Global Azure: scan two storage accounts from Hong Kong (eastasia), weekly, in 2 shard jobs.
terraform {
  required_version = ">= 1.5"
  required_providers {
    azurerm = {
      source  = "hashicorp/azurerm"
      version = "~> 4.10"
    }
  }
}

provider "azurerm" {
  features {}
  storage_use_azuread = true # the results account has shared keys disabled
}

variable "image" {
  description = "The tierscan image, by digest."
  type        = string
}

variable "scanned_storage_account_ids" {
  description = "Resource IDs of the storage accounts to scan."
  type        = list(string)
}

module "tierscan" {
  source                       = "../../azure"
  resource_group_name          = "tierscan"
  location                     = "eastasia"
  image                        = var.image
  targets                      = ["az://examplehkphotos/*", "az://examplehkarchive/*"]
  scanned_storage_account_ids  = var.scanned_storage_account_ids
  results_storage_account_name = "exampletierscanresults"
  results_container            = "tierscan-results"
  shards                       = 2
}

output "results_uri" {
  value = module.tierscan.results_uri
}
