# Azure China (21Vianet, chinanorth3): a separate deployment with its own tenant, subscription and
# credentials, which do not work in global Azure (nor the reverse). The module's environment = "china"
# points the scanner at *.blob.core.chinacloudapi.cn and login.chinacloudapi.cn.
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
  environment         = "china"
}

variable "image" {
  description = "The tierscan image in a registry reachable from Azure China, by digest."
  type        = string
}

variable "scanned_storage_account_ids" {
  description = "Resource IDs of the storage accounts to scan."
  type        = list(string)
}

module "tierscan" {
  source                       = "../../azure"
  resource_group_name          = "tierscan"
  location                     = "chinanorth3"
  environment                  = "china"
  image                        = var.image
  targets                      = ["az://examplecnmarketing/*"]
  scanned_storage_account_ids  = var.scanned_storage_account_ids
  results_storage_account_name = "exampletierscanresultscn"
  results_container            = "tierscan-results"
  shards                       = 1
}

output "results_uri" {
  value = module.tierscan.results_uri
}
