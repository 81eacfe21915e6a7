# tierscan on AWS: EventBridge Scheduler starts a Step Functions workflow that runs the scan as an AWS Batch
# (Fargate) array job of `shards` tasks, waits for all of them, then runs the merge job, which groups,
# evaluates policies and writes the run to the results bucket, which this module creates and hardens. The
# jobs run as a read-only role that can write under the results prefix only.

data "aws_partition" "current" {}
data "aws_region" "current" {}
data "aws_caller_identity" "current" {}

locals {
  partition   = data.aws_partition.current.partition
  region      = data.aws_region.current.name
  account     = data.aws_caller_identity.current.account_id
  results_uri = "s3://${var.results_bucket}/${var.results_prefix}"
  # The first statement of each key's policy: the account (its IAM policies) administers the key.
  kms_account_administers = {
    Sid       = "AccountAdministers"
    Effect    = "Allow"
    Principal = { AWS = "arn:${local.partition}:iam::${local.account}:root" }
    Action    = "kms:*"
    Resource  = "*"
  }
  # Every shard's part catalog, in the names `tierscan scan --shard I/N --results` gives them.
  parts = [for i in range(var.shards) : "${local.results_uri}/shards/part-${i}-of-${var.shards}.db"]
  environment = concat(
    [
      # AWS Batch sets only AWS_BATCH_JOB_ARRAY_INDEX and reserves the AWS_BATCH_ prefix, so the count goes here.
      { name = "TIERSCAN_SHARD_COUNT", value = tostring(var.shards) },
      { name = "AWS_DEFAULT_REGION", value = local.region },
    ],
    var.config_yaml == "" ? [] : [{ name = "TIERSCAN_CONFIG", value = var.config_yaml }],
  )
  scanned_bucket_arns = [for b in var.scanned_buckets : "arn:${local.partition}:s3:::${b}"]
  results_bucket_arn  = aws_s3_bucket.results.arn
}

# ---- logs ------------------------------------------------------------------------------------------

resource "aws_kms_key" "this" {
  description             = "${var.name}: encrypts the scan's CloudWatch logs and its schedule"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.kms_account_administers,
      {
        Sid       = "LogsUseForThisAccountsLogGroups"
        Effect    = "Allow"
        Principal = { Service = "logs.${local.region}.${data.aws_partition.current.dns_suffix}" }
        Action    = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
        Resource  = "*"
        Condition = {
          ArnLike = {
            "kms:EncryptionContext:aws:logs:arn" = "arn:${local.partition}:logs:${local.region}:${local.account}:log-group:*"
          }
        }
      },
    ]
  })
  tags = var.tags
}

resource "aws_cloudwatch_log_group" "jobs" {
  name              = "/aws/batch/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

resource "aws_cloudwatch_log_group" "workflow" {
  name              = "/aws/vendedlogs/states/${var.name}"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = var.tags
}

# ---- the results bucket -------------------------------------------------------------------------------
# It holds the exact-GPS inventory and the catalogs later runs trust: private, encrypted with a key of its
# own, TLS only, and versioned, so an overwritten `latest` or shard catalog can be recovered.

resource "aws_kms_key" "results" {
  description             = "${var.name}: encrypts the results bucket"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      local.kms_account_administers,
    ]
  })
  tags = var.tags
}

resource "aws_s3_bucket" "results" {
  #checkov:skip=CKV_AWS_144: cross-region replication is a choice of the deployment (and of the data's jurisdiction), not a default
  #checkov:skip=CKV2_AWS_62: nothing consumes the bucket's events; readers follow RESULTS/latest
  #checkov:skip=CKV_AWS_18: server access logs need a second bucket the module would have to own; CloudTrail S3 data events cover object access where required
  bucket = var.results_bucket
  tags   = var.tags
}

resource "aws_s3_bucket_ownership_controls" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "results" {
  bucket                  = aws_s3_bucket.results.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_versioning" "results" {
  bucket = aws_s3_bucket.results.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = aws_kms_key.results.arn
    }
    bucket_key_enabled = true
  }
}

# Each run overwrites `latest` and the shard catalogs: their old versions are kept for a while, then expire.
resource "aws_s3_bucket_lifecycle_configuration" "results" {
  bucket = aws_s3_bucket.results.id
  rule {
    id     = "expire-old-versions"
    status = "Enabled"
    filter {}
    noncurrent_version_expiration {
      noncurrent_days = var.results_noncurrent_days
    }
    abort_incomplete_multipart_upload {
      days_after_initiation = 7
    }
  }
  depends_on = [aws_s3_bucket_versioning.results]
}

data "aws_iam_policy_document" "results_bucket" {
  statement {
    sid     = "DenyInsecureTransport"
    effect  = "Deny"
    actions = ["s3:*"]
    resources = [
      aws_s3_bucket.results.arn,
      "${aws_s3_bucket.results.arn}/*",
    ]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "results" {
  bucket = aws_s3_bucket.results.id
  policy = data.aws_iam_policy_document.results_bucket.json
  # A bucket policy is refused while the public access block is being set up.
  depends_on = [aws_s3_bucket_public_access_block.results]
}

# ---- the job's role: read-only on the scanned buckets, write on the results prefix only -------------

data "aws_iam_policy_document" "assume_ecs_tasks" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "job" {
  statement {
    sid       = "FindBuckets"
    actions   = ["s3:ListAllMyBuckets"]
    resources = ["*"] # the action has no resource-level permissions
  }
  statement {
    sid       = "ListScannedBuckets"
    actions   = ["s3:GetBucketLocation", "s3:ListBucket"]
    resources = concat(local.scanned_bucket_arns, [local.results_bucket_arn])
  }
  statement {
    # Read-only bucket settings the scan decides by: default encryption (whether an ETag is an MD5, so a
    # copy is matched without reading it), versioning (versioned buckets are listed by version and reads
    # pin it) and Intelligent-Tiering archive configurations (whether an object may need a restore).
    # Without the encryption setting every ETag is distrusted and every candidate copy is read.
    sid = "ReadScannedBucketSettings"
    actions = [
      "s3:GetEncryptionConfiguration", "s3:GetBucketVersioning", "s3:ListBucketVersions",
      "s3:GetIntelligentTieringConfiguration",
    ]
    resources = local.scanned_bucket_arns
  }
  statement {
    sid       = "ReadScannedObjects"
    actions   = ["s3:GetObject", "s3:GetObjectVersion"]
    resources = concat([for arn in local.scanned_bucket_arns : "${arn}/*"], ["${local.results_bucket_arn}/${var.results_prefix}/*"])
  }
  statement {
    sid       = "WriteResultsOnly"
    actions   = ["s3:PutObject"]
    resources = ["${local.results_bucket_arn}/${var.results_prefix}/*"]
  }
  statement {
    sid       = "UseTheResultsKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.results.arn]
  }
}

resource "aws_iam_role" "job" {
  name               = "${var.name}-job"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "job" {
  name   = "${var.name}-read-only-scan"
  role   = aws_iam_role.job.id
  policy = data.aws_iam_policy_document.job.json
}

# Pulls the image and writes the logs for the Fargate tasks.
resource "aws_iam_role" "execution" {
  name               = "${var.name}-execution"
  assume_role_policy = data.aws_iam_policy_document.assume_ecs_tasks.json
  tags               = var.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

# ---- AWS Batch on Fargate -------------------------------------------------------------------------------

resource "aws_batch_compute_environment" "this" {
  compute_environment_name = var.name
  type                     = "MANAGED"
  compute_resources {
    type               = "FARGATE"
    max_vcpus          = var.shards * var.vcpu
    subnets            = var.subnet_ids
    security_group_ids = var.security_group_ids
  }
  tags = var.tags
}

resource "aws_batch_job_queue" "this" {
  name     = var.name
  state    = "ENABLED"
  priority = 1
  compute_environment_order {
    order               = 1
    compute_environment = aws_batch_compute_environment.this.arn
  }
  tags = var.tags
}

locals {
  container = {
    image                        = var.image
    jobRoleArn                   = aws_iam_role.job.arn
    executionRoleArn             = aws_iam_role.execution.arn
    environment                  = local.environment
    readonlyRootFilesystem       = true
    fargatePlatformConfiguration = { platformVersion = "LATEST" }
    networkConfiguration         = { assignPublicIp = "DISABLED" }
    resourceRequirements = [
      { type = "VCPU", value = tostring(var.vcpu) },
      { type = "MEMORY", value = tostring(var.memory_mib) },
    ]
    # The catalog and the run's files are written to /tmp (task storage), the only writable path.
    volumes     = [{ name = "tmp" }]
    mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
    logConfiguration = {
      logDriver = "awslogs"
      options = {
        "awslogs-group"         = aws_cloudwatch_log_group.jobs.name
        "awslogs-region"        = local.region
        "awslogs-stream-prefix" = var.name
      }
    }
  }
}

resource "aws_batch_job_definition" "scan" {
  name                  = "${var.name}-scan"
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  container_properties = jsonencode(merge(local.container, {
    # One shard per array child: --shard auto reads AWS_BATCH_JOB_ARRAY_INDEX and TIERSCAN_SHARD_COUNT.
    command = concat(["scan"], var.targets, ["--shard", "auto", "--db", "/tmp/part.db", "--results", local.results_uri, "--format", "none"])
  }))
  retry_strategy {
    attempts = 2
  }
  timeout {
    attempt_duration_seconds = 86400
  }
  tags = var.tags
}

resource "aws_batch_job_definition" "merge" {
  name                  = "${var.name}-merge"
  type                  = "container"
  platform_capabilities = ["FARGATE"]
  container_properties = jsonencode(merge(local.container, {
    command = concat(["merge"], local.parts, ["--db", "/tmp/all.db", "--results", local.results_uri])
  }))
  retry_strategy {
    attempts = 2
  }
  timeout {
    attempt_duration_seconds = 14400
  }
  tags = var.tags
}

# ---- the workflow: all shards, then the merge ----------------------------------------------------------

resource "aws_sfn_state_machine" "scan" {
  name     = var.name
  role_arn = aws_iam_role.workflow.arn
  definition = jsonencode({
    Comment = "tierscan: the scan's shards as one Batch array job, then the merge"
    StartAt = "Shards"
    States = {
      Shards = {
        Type     = "Task"
        Resource = "arn:${local.partition}:states:::batch:submitJob.sync"
        Parameters = merge(
          { JobName = "${var.name}-scan", JobQueue = aws_batch_job_queue.this.arn, JobDefinition = aws_batch_job_definition.scan.arn },
          # A Batch array has 2 to 10,000 children; one shard is a plain job (--shard auto then means 0/1).
          var.shards > 1 ? { ArrayProperties = { Size = var.shards } } : {},
        )
        Next = "Merge"
      }
      Merge = {
        Type       = "Task"
        Resource   = "arn:${local.partition}:states:::batch:submitJob.sync"
        Parameters = { JobName = "${var.name}-merge", JobQueue = aws_batch_job_queue.this.arn, JobDefinition = aws_batch_job_definition.merge.arn }
        End        = true
      }
    }
  })
  logging_configuration {
    log_destination        = "${aws_cloudwatch_log_group.workflow.arn}:*"
    include_execution_data = true # job descriptions (the config included; credentials come from roles, never here)
    level                  = "ALL"
  }
  tracing_configuration {
    enabled = true
  }
  tags = var.tags
}

data "aws_iam_policy_document" "assume_states" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["states.amazonaws.com"]
    }
  }
}

data "aws_iam_policy_document" "workflow" {
  statement {
    sid     = "SubmitTheJobs"
    actions = ["batch:SubmitJob"]
    resources = [
      aws_batch_job_queue.this.arn,
      "arn:${local.partition}:batch:${local.region}:${local.account}:job-definition/${var.name}-scan*",
      "arn:${local.partition}:batch:${local.region}:${local.account}:job-definition/${var.name}-merge*",
    ]
  }
  statement {
    sid       = "FollowTheJobs"
    actions   = ["batch:DescribeJobs", "batch:TerminateJob"]
    resources = ["arn:${local.partition}:batch:${local.region}:${local.account}:job/*"]
  }
  statement {
    sid       = "SyncIntegrationRule"
    actions   = ["events:PutTargets", "events:PutRule", "events:DescribeRule"]
    resources = ["arn:${local.partition}:events:${local.region}:${local.account}:rule/StepFunctionsGetEventsForBatchJobsRule"]
  }
  statement {
    #checkov:skip=CKV_AWS_111: CloudWatch Logs delivery and X-Ray actions take no resource ARN (AWS documents Resource "*")
    #checkov:skip=CKV_AWS_356: same: these actions have no resource-level permissions
    sid = "WorkflowLogsAndTraces"
    actions = [
      "logs:CreateLogDelivery", "logs:GetLogDelivery", "logs:UpdateLogDelivery", "logs:DeleteLogDelivery",
      "logs:ListLogDeliveries", "logs:PutResourcePolicy", "logs:DescribeResourcePolicies", "logs:DescribeLogGroups",
      "xray:PutTraceSegments", "xray:PutTelemetryRecords", "xray:GetSamplingRules", "xray:GetSamplingTargets",
    ]
    resources = ["*"]
  }
}

resource "aws_iam_role" "workflow" {
  name               = "${var.name}-workflow"
  assume_role_policy = data.aws_iam_policy_document.assume_states.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "workflow" {
  name   = "${var.name}-run-jobs"
  role   = aws_iam_role.workflow.id
  policy = data.aws_iam_policy_document.workflow.json
}

# ---- the schedule ---------------------------------------------------------------------------------------

data "aws_iam_policy_document" "assume_scheduler" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["scheduler.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account]
    }
  }
}

data "aws_iam_policy_document" "scheduler" {
  statement {
    actions   = ["states:StartExecution"]
    resources = [aws_sfn_state_machine.scan.arn]
  }
}

resource "aws_iam_role" "scheduler" {
  name               = "${var.name}-scheduler"
  assume_role_policy = data.aws_iam_policy_document.assume_scheduler.json
  tags               = var.tags
}

resource "aws_iam_role_policy" "scheduler" {
  name   = "${var.name}-start-scan"
  role   = aws_iam_role.scheduler.id
  policy = data.aws_iam_policy_document.scheduler.json
}

resource "aws_scheduler_schedule" "scan" {
  name                         = var.name
  description                  = "Runs the tierscan workflow: shards, then merge"
  schedule_expression          = var.schedule_expression
  schedule_expression_timezone = var.schedule_timezone
  kms_key_arn                  = aws_kms_key.this.arn
  flexible_time_window {
    mode = "OFF"
  }
  target {
    arn      = aws_sfn_state_machine.scan.arn
    role_arn = aws_iam_role.scheduler.arn
    input    = jsonencode({})
    retry_policy {
      maximum_retry_attempts = 0 # a missed run waits for the next one rather than doubling up
    }
  }
}
