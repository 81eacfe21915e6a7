# tierscan on Google Cloud: Cloud Scheduler starts a Workflow that runs the scan as a Cloud Run Job of
# `shards` tasks, waits for it, then runs the merge job, which groups, evaluates policies and writes the run
# to the results bucket, which this module creates and hardens. The jobs run as a service account with
# objectViewer on the scanned buckets and create/read access under the results prefix only.

locals {
  results_uri = "gs://${var.results_bucket}/${var.results_prefix}"
  parts       = [for i in range(var.shards) : "${local.results_uri}/shards/part-${i}-of-${var.shards}.db"]
  config_env  = var.config_yaml == "" ? {} : { TIERSCAN_CONFIG = var.config_yaml }
  # The results prefix as IAM conditions name objects.
  results_object = "projects/_/buckets/${var.results_bucket}/objects/${var.results_prefix}"
}

# ---- identities -----------------------------------------------------------------------------------------

resource "google_service_account" "job" {
  project      = var.project
  account_id   = "${var.name}-job"
  display_name = "tierscan scan (read-only on the scanned buckets)"
}

resource "google_service_account" "runner" {
  project      = var.project
  account_id   = "${var.name}-runner"
  display_name = "tierscan schedule and workflow (runs the jobs)"
}

# objectViewer lists and reads objects but cannot read a bucket's own metadata, and the scanner needs the
# bucket's location (its region and jurisdiction): this role adds exactly that one permission.
resource "google_project_iam_custom_role" "bucket_location" {
  project     = var.project
  role_id     = replace("${var.name}_bucket_location", "-", "_")
  title       = "tierscan bucket location reader"
  description = "storage.buckets.get only: the scanner reads each scanned bucket's location."
  permissions = ["storage.buckets.get"]
}

resource "google_storage_bucket_iam_member" "viewer" {
  for_each = toset(var.scanned_buckets)
  bucket   = each.value
  role     = "roles/storage.objectViewer"
  member   = "serviceAccount:${google_service_account.job.email}"
}

resource "google_storage_bucket_iam_member" "location" {
  for_each = toset(var.scanned_buckets)
  bucket   = each.value
  role     = google_project_iam_custom_role.bucket_location.id
  member   = "serviceAccount:${google_service_account.job.email}"
}

# ---- the results bucket -------------------------------------------------------------------------------
# It holds the exact-GPS inventory and the catalogs later runs trust: uniform access (IAM only, which the
# prefix conditions below need), public access prevented, and versioned, so an overwritten `latest` or
# shard catalog can be recovered.

resource "google_storage_bucket" "results" {
  #checkov:skip=CKV_GCP_62: usage logs need a second bucket the module would have to own; Cloud Audit Logs (Data Access) record object access where required
  project                     = var.project
  name                        = var.results_bucket
  location                    = var.region
  labels                      = var.labels
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  versioning {
    enabled = true
  }
  # Each run overwrites `latest` and the shard catalogs: old versions are kept for a while, then deleted.
  lifecycle_rule {
    condition {
      days_since_noncurrent_time = var.results_noncurrent_days
      with_state                 = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }
}

# What the job does under the results prefix: create objects and read them back (the shard catalogs).
resource "google_project_iam_custom_role" "results_writer" {
  project     = var.project
  role_id     = replace("${var.name}_results_writer", "-", "_")
  title       = "tierscan results writer"
  description = "Create and read objects (granted under the results prefix only); no delete, no list."
  permissions = ["storage.objects.create", "storage.objects.get"]
}

# Cloud Storage needs storage.objects.delete to overwrite an object. Each run overwrites `latest` and its
# shard catalog, so the job gets it on exactly those names; in the versioned bucket the old copy is kept.
resource "google_project_iam_custom_role" "results_replacer" {
  project     = var.project
  role_id     = replace("${var.name}_results_replacer", "-", "_")
  title       = "tierscan results replacer"
  description = "Overwrite objects (granted on RESULTS/latest and RESULTS/shards/ only)."
  permissions = ["storage.objects.delete"]
}

resource "google_storage_bucket_iam_member" "results" {
  bucket = google_storage_bucket.results.name
  role   = google_project_iam_custom_role.results_writer.id
  member = "serviceAccount:${google_service_account.job.email}"
  condition {
    title       = "tierscan-results-prefix"
    description = "Only objects under the results prefix"
    expression  = "resource.name.startsWith(\"${local.results_object}/\")"
  }
}

resource "google_storage_bucket_iam_member" "results_replace" {
  bucket = google_storage_bucket.results.name
  role   = google_project_iam_custom_role.results_replacer.id
  member = "serviceAccount:${google_service_account.job.email}"
  condition {
    title       = "tierscan-results-overwritten"
    description = "Only the objects each run overwrites: latest and the shard catalogs"
    expression  = "resource.name == \"${local.results_object}/latest\" || resource.name.startsWith(\"${local.results_object}/shards/\")"
  }
}

# ---- logs -----------------------------------------------------------------------------------------------
# The jobs' and the workflow's logs, kept for log_retention_days in a log bucket of their own (the
# project's _Default bucket keeps 30 days).

resource "google_logging_project_bucket_config" "jobs" {
  project        = var.project
  location       = var.region
  bucket_id      = var.name
  retention_days = var.log_retention_days
  description    = "tierscan job and workflow logs"
}

resource "google_logging_project_sink" "jobs" {
  project                = var.project
  name                   = "${var.name}-jobs"
  destination            = "logging.googleapis.com/${google_logging_project_bucket_config.jobs.id}"
  unique_writer_identity = true
  filter = join(" OR ", [
    "(resource.type=\"cloud_run_job\" AND resource.labels.job_name=(\"${var.name}-scan\" OR \"${var.name}-merge\"))",
    "(resource.type=\"workflows.googleapis.com/Workflow\" AND resource.labels.workflow_id=\"${var.name}\")",
  ])
}

# ---- the jobs -------------------------------------------------------------------------------------------

resource "google_cloud_run_v2_job" "scan" {
  project  = var.project
  location = var.region
  name     = "${var.name}-scan"
  labels   = var.labels
  template {
    task_count  = var.shards
    parallelism = var.shards
    template {
      service_account = google_service_account.job.email
      max_retries     = 1
      timeout         = "86400s"
      containers {
        image = var.image
        # --shard auto: each task's CLOUD_RUN_TASK_INDEX of CLOUD_RUN_TASK_COUNT.
        args = concat(["scan"], [for b in var.scanned_buckets : "gs://${b}"],
        ["--shard", "auto", "--db", "/tmp/part.db", "--results", local.results_uri, "--format", "none"])
        dynamic "env" {
          for_each = local.config_env
          content {
            name  = env.key
            value = env.value
          }
        }
        env {
          name  = "GOOGLE_CLOUD_PROJECT"
          value = var.project
        }
        resources {
          limits = { cpu = var.cpu, memory = var.memory }
        }
      }
    }
  }
}

resource "google_cloud_run_v2_job" "merge" {
  project  = var.project
  location = var.region
  name     = "${var.name}-merge"
  labels   = var.labels
  template {
    task_count = 1
    template {
      service_account = google_service_account.job.email
      max_retries     = 1
      timeout         = "14400s"
      containers {
        image = var.image
        args  = concat(["merge"], local.parts, ["--db", "/tmp/all.db", "--results", local.results_uri])
        dynamic "env" {
          for_each = local.config_env
          content {
            name  = env.key
            value = env.value
          }
        }
        resources {
          limits = { cpu = var.cpu, memory = var.memory }
        }
      }
    }
  }
}

# ---- the workflow: all shards, then the merge ----------------------------------------------------------

# The runner may start the two jobs (run.jobs.run) and follow their operations, nothing more.
resource "google_cloud_run_v2_job_iam_member" "runner" {
  for_each = {
    scan  = google_cloud_run_v2_job.scan.name
    merge = google_cloud_run_v2_job.merge.name
  }
  project  = var.project
  location = var.region
  name     = each.value
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.runner.email}"
}

resource "google_project_iam_member" "runner" {
  for_each = toset(["roles/run.viewer", "roles/workflows.invoker", "roles/logging.logWriter"])
  project  = var.project
  role     = each.value
  member   = "serviceAccount:${google_service_account.runner.email}"
}

resource "google_workflows_workflow" "scan" {
  project         = var.project
  region          = var.region
  name            = var.name
  description     = "tierscan: the scan's shards (one Cloud Run Job execution of N tasks), then the merge"
  service_account = google_service_account.runner.id
  call_log_level  = "LOG_ERRORS_ONLY"
  labels          = var.labels
  # The Cloud Run connector waits for each execution to finish, so the merge starts after every shard.
  source_contents = yamlencode({
    main = {
      steps = [
        { shards = { call = "googleapis.run.v2.projects.locations.jobs.run", args = { name = google_cloud_run_v2_job.scan.id, connector_params = { timeout = 86400 } } } },
        { merge = { call = "googleapis.run.v2.projects.locations.jobs.run", args = { name = google_cloud_run_v2_job.merge.id, connector_params = { timeout = 14400 } } } },
      ]
    }
  })
}

# ---- the schedule ---------------------------------------------------------------------------------------

resource "google_cloud_scheduler_job" "scan" {
  project     = var.project
  region      = var.region
  name        = var.name
  description = "Runs the tierscan workflow: shards, then merge"
  schedule    = var.schedule
  time_zone   = var.time_zone
  http_target {
    http_method = "POST"
    uri         = "https://workflowexecutions.googleapis.com/v1/${google_workflows_workflow.scan.id}/executions"
    body        = base64encode(jsonencode({}))
    oauth_token {
      service_account_email = google_service_account.runner.email
      scope                 = "https://www.googleapis.com/auth/cloud-platform"
    }
  }
  retry_config {
    retry_count = 0 # a missed run waits for the next one rather than doubling up
  }
}
