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
# The read-only scan, plus writing to the results location: the list, and nothing else.
AWS_READ = {"s3:ListAllMyBuckets", "s3:GetBucketLocation", "s3:ListBucket", "s3:GetObject"}


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
    assert actions == AWS_READ | {"s3:PutObject"}
    # Writes go to the results prefix only; nothing is granted by wildcard action.
    assert statements["WriteResultsOnly"]["resources"] == ["${local.results_bucket_arn}/${var.results_prefix}/*"]
    assert statements["FindBuckets"]["resources"] == ["*"]  # ListAllMyBuckets has no resource ARN
    assert not any("*" in a for a in actions)
    roles = blocks(module, "resource", "aws_iam_role_policy")
    assert roles["job"]["policy"] == "${data.aws_iam_policy_document.job.json}"
    # Every job (shards and merge) runs as that role.
    assert "jobRoleArn                   = aws_iam_role.job.arn" in (TF / "aws" / "main.tf").read_text()


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
    assert members["results"]["bucket"] == "${var.results_bucket}"
    assert "var.results_prefix" in members["results"]["condition"][0]["expression"]
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
    assert roles["results"]["role_definition_name"] == "Storage Blob Data Contributor"
    assert "containers/${var.results_container}" in roles["results"]["scope"]  # the container, not the account
    jobs = blocks(module, "resource", "azurerm_container_app_job")
    assert jobs["scan"]["schedule_trigger_config"][0]["cron_expression"] == "${var.scan_cron}"
    assert jobs["merge"]["schedule_trigger_config"][0]["cron_expression"] == "${var.merge_cron}"
    assert jobs["scan"]["count"] == "${var.shards}"
    assert all(j["identity"][0]["type"] == "UserAssigned" for j in jobs.values())
    defaults = variables(module)
    assert defaults["scan_cron"]["default"] == "0 18 * * 6" and defaults["merge_cron"]["default"] == "0 0 * * 0"


@pytest.mark.parametrize("example", ["aws", "aws-cn", "gcp", "azure", "azure-china"])
def test_examples_use_the_modules(example: str) -> None:
    module = load(f"examples/{example}")
    (call,) = [body for block in module["module"] for body in block.values()]
    assert call["source"] == f"../../{example.split('-')[0]}"
    assert module["terraform"][0]["required_providers"]
