"""The Terraform modules, read as data (python-hcl2): the IAM they grant, the schedules they set, and that the
shards and the merge are wired to the CLI's contract. `terraform validate` needs the providers, which cannot
be downloaded where CI runs (terraform/README.md), so these tests and `terraform fmt` + checkov are the checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

hcl2 = pytest.importorskip("hcl2")

TF = Path(__file__).resolve().parents[1] / "terraform"
MODULES = ("aws", "gcp", "azure")
# The S3 operations the connector's scan makes, and the IAM action each needs (GetObject and HeadObject of a
# pinned version need GetObjectVersion too). A scan's operations that the role does not grant fail or, for
# the bucket settings, make the scan read more.
S3_SCAN_OPERATIONS = {
    "list_buckets": {"s3:ListAllMyBuckets"},
    "get_bucket_location": {"s3:GetBucketLocation"},
    "head_bucket": {"s3:ListBucket"},
    "list_objects_v2": {"s3:ListBucket"},
    "list_object_versions": {"s3:ListBucketVersions"},
    "get_bucket_encryption": {"s3:GetEncryptionConfiguration"},
    "get_bucket_versioning": {"s3:GetBucketVersioning"},
    "list_bucket_intelligent_tiering_configurations": {"s3:GetIntelligentTieringConfiguration"},
    "head_object": {"s3:GetObject", "s3:GetObjectVersion"},
    "get_object": {"s3:GetObject", "s3:GetObjectVersion"},
}
# Writing a run's results (the results location, under its prefix only).
S3_RESULTS_OPERATIONS = {"put_object": {"s3:PutObject"}}
# `tierscan apply` only (opt-in, run with credentials of the user's choosing): not the scheduled job's.
S3_APPLY_OPERATIONS = {"copy_object", "delete_object", "get_object_tagging", "put_object_tagging",
                       "delete_object_tagging"}
AWS_READ = set().union(*S3_SCAN_OPERATIONS.values())
AWS_RESULTS_KEY = {"kms:GenerateDataKey", "kms:Decrypt"}  # SSE-KMS writes and reads of the results
BLOB_DATA = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def load(folder: str) -> dict[str, list[Any]]:
    """Every top-level block of the folder's .tf files, merged by block type."""
    options = hcl2.SerializationOptions(strip_string_quotes=True, explicit_blocks=False)
    merged: dict[str, list[Any]] = {}
    for path in sorted((TF / folder).glob("*.tf")):
        with path.open() as fh:
            for kind, blocks in hcl2.load(fh, serialization_options=options).items():
                merged.setdefault(kind, []).extend(blocks)
    return merged


def blocks(module: dict[str, list[Any]], kind: str, type_: str) -> dict[str, Any]:
    """name -> body of the module's `kind "type_" "name"` blocks (kind: resource or data)."""
    return {name: body for block in module.get(kind, []) for t, named in block.items() if t == type_
            for name, body in named.items()}


def variables(module: dict[str, list[Any]]) -> dict[str, Any]:
    return {name: body for block in module["variable"] for name, body in block.items()}


@pytest.mark.parametrize("folder", MODULES)
def test_every_variable_and_output_is_described(folder: str) -> None:
    module = load(folder)
    assert all(v.get("description") for v in variables(module).values())
    assert all(o.get("description") for block in module["output"] for o in block.values())
    assert "results_uri" in {name for block in module["output"] for name in block}


def test_aws_job_role_is_read_only_plus_results_write() -> None:
    module = load("aws")
    policy = blocks(module, "data", "aws_iam_policy_document")["job"]
    statements = {s["sid"]: s for s in policy["statement"]}
    actions = {a for s in statements.values() for a in s["actions"]}
    assert actions == AWS_READ | {"s3:PutObject"} | AWS_RESULTS_KEY
    # SSE-KMS: the job may use the results bucket's key, and no other.
    assert set(statements["UseTheResultsKey"]["actions"]) == AWS_RESULTS_KEY
    assert statements["UseTheResultsKey"]["resources"] == ["${aws_kms_key.results.arn}"]
    # Writes go to the results prefix only; nothing is granted by wildcard action.
    assert statements["WriteResultsOnly"]["resources"] == ["${local.results_bucket_arn}/${var.results_prefix}/*"]
    assert statements["FindBuckets"]["resources"] == ["*"]  # ListAllMyBuckets has no resource ARN
    assert not any("*" in a for a in actions)
    roles = blocks(module, "resource", "aws_iam_role_policy")
    assert roles["job"]["policy"] == "${data.aws_iam_policy_document.job.json}"
    # Every job (shards and merge) runs as that role.
    assert "jobRoleArn                   = aws_iam_role.job.arn" in (TF / "aws" / "main.tf").read_text()


def test_aws_job_role_grants_every_operation_the_s3_connector_scans_with() -> None:
    """Every S3 API operation named in the connector's source is classified here; a new one fails this test
    until the job role (or `apply`'s documented permissions) says whether it needs it."""
    botocore = pytest.importorskip("botocore.session")
    from botocore import xform_name

    operations = {xform_name(op) for op in botocore.get_session().get_service_model("s3").operation_names}
    source = "\n".join((TF.parent / "connectors" / name).read_text() for name in ("s3.py", "_s3_get.py"))
    named = {op for op in operations if f'"{op}"' in source or f".{op}(" in source}
    assert named - S3_SCAN_OPERATIONS.keys() - S3_RESULTS_OPERATIONS.keys() - S3_APPLY_OPERATIONS == set()
    assert {"list_objects_v2", "get_bucket_encryption", "list_object_versions"} <= named  # the scan is seen
    policy = blocks(load("aws"), "data", "aws_iam_policy_document")["job"]
    granted = {a for s in policy["statement"] for a in s["actions"]}
    assert granted >= AWS_READ | set().union(*S3_RESULTS_OPERATIONS.values())


def test_aws_schedule_runs_the_shards_then_the_merge() -> None:
    module = load("aws")
    schedule = blocks(module, "resource", "aws_scheduler_schedule")["scan"]
    assert schedule["schedule_expression"] == "${var.schedule_expression}"
    assert schedule["flexible_time_window"][0]["mode"] == "OFF"
    assert schedule["target"][0]["arn"] == "${aws_sfn_state_machine.scan.arn}"
    default = variables(module)["schedule_expression"]["default"]
    assert default.startswith("cron(") and variables(module)["schedule_timezone"]["default"] == "Asia/Hong_Kong"
    scheduler = blocks(module, "data", "aws_iam_policy_document")["scheduler"]["statement"][0]
    assert scheduler["actions"] == ["states:StartExecution"]
    workflow = blocks(module, "resource", "aws_sfn_state_machine")["scan"]["definition"]
    assert "batch:submitJob.sync" in workflow and "ArrayProperties = {Size = var.shards}" in workflow
    assert 'Next = "Merge"' in workflow
    jobs = blocks(module, "resource", "aws_batch_job_definition")
    assert '"--shard", "auto"' in jobs["scan"]["container_properties"]
    assert "local.parts" in jobs["merge"]["container_properties"]
    logs = blocks(module, "resource", "aws_cloudwatch_log_group")
    assert all(g["kms_key_id"] == "${aws_kms_key.this.arn}" and g["retention_in_days"] for g in logs.values())


def test_gcp_service_account_views_scanned_buckets_and_writes_results_only() -> None:
    module = load("gcp")
    members = blocks(module, "resource", "google_storage_bucket_iam_member")
    assert members["viewer"]["role"] == "roles/storage.objectViewer"
    assert members["viewer"]["for_each"] == "${toset(var.scanned_buckets)}"
    assert members["results"]["bucket"] == "${google_storage_bucket.results.name}"
    assert "local.results_object" in members["results"]["condition"][0]["expression"]
    custom = blocks(module, "resource", "google_project_iam_custom_role")["bucket_location"]
    assert custom["permissions"] == ["storage.buckets.get"]
    job_members = {m["member"] for m in members.values()}
    assert job_members == {"serviceAccount:${google_service_account.job.email}"}


def test_gcp_schedule_runs_n_tasks_then_the_merge() -> None:
    module = load("gcp")
    scheduler = blocks(module, "resource", "google_cloud_scheduler_job")["scan"]
    assert scheduler["schedule"] == "${var.schedule}" and scheduler["time_zone"] == "${var.time_zone}"
    assert variables(module)["schedule"]["default"] == "0 2 * * 0"
    assert "workflowexecutions.googleapis.com" in scheduler["http_target"][0]["uri"]
    jobs = blocks(module, "resource", "google_cloud_run_v2_job")
    assert jobs["scan"]["template"][0]["task_count"] == "${var.shards}"
    assert '"--shard", "auto"' in jobs["scan"]["template"][0]["template"][0]["containers"][0]["args"]
    source = blocks(module, "resource", "google_workflows_workflow")["scan"]["source_contents"]
    assert source.index("google_cloud_run_v2_job.scan.id") < source.index("google_cloud_run_v2_job.merge.id")


def test_azure_identity_reads_blobs_and_jobs_run_on_schedules() -> None:
    module = load("azure")
    roles = blocks(module, "resource", "azurerm_role_assignment")
    assert roles["reader"]["role_definition_name"] == "Storage Blob Data Reader"
    assert roles["reader"]["for_each"] == "${toset(var.scanned_storage_account_ids)}"
    assert roles["results"]["role_definition_id"] == (
        "${azurerm_role_definition.results_writer.role_definition_resource_id}")
    assert "containers/${azurerm_storage_container.results.name}" in roles["results"]["scope"]  # not the account
    jobs = blocks(module, "resource", "azurerm_container_app_job")
    assert jobs["scan"]["schedule_trigger_config"][0]["cron_expression"] == "${var.scan_cron}"
    assert jobs["merge"]["schedule_trigger_config"][0]["cron_expression"] == "${var.merge_cron}"
    assert jobs["scan"]["count"] == "${var.shards}"
    assert all(j["identity"][0]["type"] == "UserAssigned" for j in jobs.values())
    defaults = variables(module)
    assert defaults["scan_cron"]["default"] == "0 18 * * 6" and defaults["merge_cron"]["default"] == "0 0 * * 0"


# ---- the results store: created and hardened, written under the prefix only --------------------------------


def test_aws_results_bucket_is_hardened() -> None:
    module = load("aws")
    bucket = blocks(module, "resource", "aws_s3_bucket")["results"]
    assert bucket["bucket"] == "${var.results_bucket}"
    # The job's grants name the bucket the module creates.
    assert "results_bucket_arn  = aws_s3_bucket.results.arn" in (TF / "aws" / "main.tf").read_text()
    ref = "${aws_s3_bucket.results.id}"

    (sse,) = blocks(module, "resource", "aws_s3_bucket_server_side_encryption_configuration").values()
    default = sse["rule"][0]["apply_server_side_encryption_by_default"][0]
    assert sse["bucket"] == ref and default["sse_algorithm"] == "aws:kms"
    assert default["kms_master_key_id"] == "${aws_kms_key.results.arn}"
    assert blocks(module, "resource", "aws_kms_key")["results"]["enable_key_rotation"] is True

    (block,) = blocks(module, "resource", "aws_s3_bucket_public_access_block").values()
    assert block["bucket"] == ref
    flags = ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets")
    assert all(block[flag] is True for flag in flags)

    (versioning,) = blocks(module, "resource", "aws_s3_bucket_versioning").values()
    assert versioning["bucket"] == ref and versioning["versioning_configuration"][0]["status"] == "Enabled"

    (ownership,) = blocks(module, "resource", "aws_s3_bucket_ownership_controls").values()
    assert ownership["bucket"] == ref and ownership["rule"][0]["object_ownership"] == "BucketOwnerEnforced"

    (policy,) = blocks(module, "resource", "aws_s3_bucket_policy").values()
    assert policy["bucket"] == ref and policy["policy"] == "${data.aws_iam_policy_document.results_bucket.json}"
    (deny,) = blocks(module, "data", "aws_iam_policy_document")["results_bucket"]["statement"]
    assert deny["effect"] == "Deny" and deny["actions"] == ["s3:*"]
    assert deny["principals"] == [{"type": "*", "identifiers": ["*"]}]
    assert deny["resources"] == ["${aws_s3_bucket.results.arn}", "${aws_s3_bucket.results.arn}/*"]
    assert deny["condition"] == [{"test": "Bool", "variable": "aws:SecureTransport", "values": ["false"]}]


def test_aws_scanned_buckets_is_required_and_the_examples_say_what_star_means() -> None:
    scanned = variables(load("aws"))["scanned_buckets"]
    assert "default" not in scanned
    for example in ("aws", "aws-cn"):
        (call,) = [body for block in load(f"examples/{example}")["module"] for body in block.values()]
        assert call["scanned_buckets"] == ["*"]
        comments = " ".join(c["value"] for c in call["__comments__"])
        assert '["*"] means every bucket in the account' in comments


def test_gcp_results_bucket_is_hardened_and_the_grants_have_no_delete_but_for_overwrites() -> None:
    module = load("gcp")
    bucket = blocks(module, "resource", "google_storage_bucket")["results"]
    assert bucket["name"] == "${var.results_bucket}"
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"] == [{"enabled": True}]

    roles = blocks(module, "resource", "google_project_iam_custom_role")
    assert sorted(roles["results_writer"]["permissions"]) == ["storage.objects.create", "storage.objects.get"]
    assert roles["results_replacer"]["permissions"] == ["storage.objects.delete"]
    assert 'results_object = "projects/_/buckets/${var.results_bucket}/objects/${var.results_prefix}"' in (
        TF / "gcp" / "main.tf").read_text()
    members = blocks(module, "resource", "google_storage_bucket_iam_member")
    results = {name: m for name, m in members.items() if "results" in m["bucket"]}
    assert {m["role"] for m in results.values()} == {
        "${google_project_iam_custom_role.results_writer.id}", "${google_project_iam_custom_role.results_replacer.id}"}
    assert all(m["bucket"] == "${google_storage_bucket.results.name}" for m in results.values())
    writer = results["results"]["condition"][0]["expression"]
    assert writer == 'resource.name.startsWith("${local.results_object}/")'
    # Delete (which Cloud Storage requires to overwrite) only on what each run overwrites.
    replace = results["results_replace"]["condition"][0]["expression"]
    assert replace == ('resource.name == "${local.results_object}/latest"'
                       ' || resource.name.startsWith("${local.results_object}/shards/")')
    assert not any(m["role"].startswith("roles/") for m in results.values())


def test_gcp_logs_are_kept_for_the_retention() -> None:
    module = load("gcp")
    log_bucket = blocks(module, "resource", "google_logging_project_bucket_config")["jobs"]
    assert log_bucket["retention_days"] == "${var.log_retention_days}"
    assert variables(module)["log_retention_days"]["default"] == 365
    sink = blocks(module, "resource", "google_logging_project_sink")["jobs"]
    assert sink["destination"] == "logging.googleapis.com/${google_logging_project_bucket_config.jobs.id}"
    assert 'resource.type=\\"cloud_run_job\\"' in sink["filter"]
    assert "workflows.googleapis.com/Workflow" in sink["filter"]


def test_azure_results_account_is_hardened() -> None:
    module = load("azure")
    account = blocks(module, "resource", "azurerm_storage_account")["results"]
    assert account["name"] == "${var.results_storage_account_name}"
    assert account["min_tls_version"] == "TLS1_2"
    assert account["https_traffic_only_enabled"] is True
    assert account["allow_nested_items_to_be_public"] is False
    assert account["shared_access_key_enabled"] is False
    (blob,) = account["blob_properties"]
    assert blob["versioning_enabled"] is True
    assert blob["delete_retention_policy"] == [{"days": "${var.results_soft_delete_days}"}]
    assert blob["container_delete_retention_policy"] == [{"days": "${var.results_soft_delete_days}"}]
    container = blocks(module, "resource", "azurerm_storage_container")["results"]
    assert container["storage_account_id"] == "${azurerm_storage_account.results.id}"
    assert container["container_access_type"] == "private"
    workspace = blocks(module, "resource", "azurerm_log_analytics_workspace")["this"]
    assert workspace["retention_in_days"] == "${var.log_retention_days}"
    logs = blocks(module, "resource", "azurerm_monitor_diagnostic_setting")["results_blobs"]
    assert {e["category"] for e in logs["enabled_log"]} == {"StorageRead", "StorageWrite", "StorageDelete"}


def test_azure_results_grant_is_read_write_under_the_prefix_without_delete() -> None:
    module = load("azure")
    (role,) = blocks(module, "resource", "azurerm_role_definition")["results_writer"]["permissions"]
    assert role["data_actions"] == [f"{BLOB_DATA}/read", f"{BLOB_DATA}/write"]
    assert not role.get("actions") and not role.get("not_data_actions")
    grant = blocks(module, "resource", "azurerm_role_assignment")["results"]
    assert grant["condition_version"] == "2.0"
    condition = " ".join(grant["condition"].split())
    assert (f"!(ActionMatches{{'{BLOB_DATA}/read'}}) AND !(ActionMatches{{'{BLOB_DATA}/write'}})"
            in condition)
    assert f"@Resource[{BLOB_DATA}:path] StringStartsWith '${{var.results_prefix}}/'" in condition
    text = "".join(p.read_text() for p in (TF / "azure").glob("*.tf"))
    assert "Storage Blob Data Contributor" not in text and "Storage Blob Data Owner" not in text


@pytest.mark.parametrize("example", ["aws", "aws-cn", "gcp", "azure", "azure-china"])
def test_examples_use_the_modules(example: str) -> None:
    module = load(f"examples/{example}")
    (call,) = [body for block in module["module"] for body in block.values()]
    assert call["source"] == f"../../{example.split('-')[0]}"
    assert module["terraform"][0]["required_providers"]
