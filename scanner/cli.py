"""The `tierscan` command. Thin: it parses arguments and calls the pipeline, report and policy modules.

Exit status: 0 success; 2 bad usage, config or policy file (the message names file, line and field), or
the catalog is in use by another writing command (the message names it: `tierscan.scanner.scan.catalog_lock`);
1 a finding at or above `--fail-on SEVERITY`; 3 could not complete: a target cannot be reached or used
(missing credentials, denied, no such bucket, network, TLS, not a storage service) or a request kept
failing, in one line that names the target, the cause and the fix (`--debug` adds the traceback);
130 interrupted (Ctrl-C): what is committed stays, and the same command resumes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import logging
import os
import sqlite3
import sys
import tempfile
import traceback
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, closing, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import click
from rich.table import Table

from tierscan.policies import describe_packs, describe_policies, load_policies, policy_schema, validate_files
from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.config import Config, check_workers, load_config, load_config_text
from tierscan.scanner.core.errors import ObjectError, TargetError, UsageError
from tierscan.scanner.core.models import Severity
from tierscan.scanner.core.safe_text import terminal_safe, terminal_text
from tierscan.scanner.core.shard import Shard, parse_shard, shard_from_env
from tierscan.scanner.pricing.check import check_bucket_settings
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.remediate.apply import APPROVE_MIN, Action
from tierscan.scanner.scan.catalog import Catalog
from tierscan.scanner.scan.catalog_lock import CatalogLock
from tierscan.scanner.scan.progress import RichProgress

if TYPE_CHECKING:
    from tierscan.scanner.report.build import ReportStream

__all__ = ["main"]

SEVERITIES = [s.value for s in Severity]
DEFAULT_DB = Path("tierscan.db")


def _config(value: str | None) -> Config:
    """`--config FILE|URI`, else the YAML in `TIERSCAN_CONFIG`, else the defaults: a container gets its
    config from a mounted file, an environment variable or a bucket."""
    return _given_config(value)[0] or Config()


def _given_config(value: str | None) -> tuple[Config | None, str]:
    """The config `--config` or `TIERSCAN_CONFIG` gives, checked against the price table, and its name for
    messages; None when neither gives one."""
    if value and "://" in value:
        from tierscan.scanner.report.publish import read_uri

        config, name = load_config_text(read_uri(value).decode("utf-8"), value), value
    elif value is None and os.environ.get("TIERSCAN_CONFIG"):
        config, name = load_config_text(os.environ["TIERSCAN_CONFIG"], "$TIERSCAN_CONFIG"), "$TIERSCAN_CONFIG"
    elif value:
        config, name = load_config(Path(value)), value
    else:
        return None, "--config"
    check_bucket_settings(config, PriceTable.load(config.prices), name)
    return config, name


def _catalog_config(catalog: Catalog, given: tuple[Config | None, str], applies: Collection[str]) -> Config:
    """The settings a command reading `catalog` uses: the given config, else the ones its scan stored
    (`tierscan.scanner.scan.settings`); a given config that differs from them is named on stderr."""
    from tierscan.scanner.scan.settings import command_settings

    config, warning = command_settings(catalog, *given, applies)
    if warning:
        click.echo(terminal_safe(warning), err=True)
    return config


def _check_targets(targets: list[str]) -> list[str]:
    """`targets` as given, once every `SCHEME://*` among them is one its connector can list
    (`Capabilities.lists_all_buckets`); else a usage error that says what to name instead."""
    from tierscan.connectors import connector_class, parse_target

    for text in targets:
        target = parse_target(text)
        if target.all_buckets:
            capabilities = connector_class(target.scheme).capabilities
            if not capabilities.lists_all_buckets:
                raise UsageError(f"{text}: the {capabilities.name} connector cannot list every bucket; name each "
                                 f"one instead ({text.rstrip('*')}BUCKET)")
    return targets


def _shard(value: str | None) -> Shard | None:
    """`--shard I/N`; `--shard auto`: the batch platform's task index, else 0/1 (the deployment passes
    `auto` so that one task still writes a part for the merge step); no flag: the platform's index only
    when it runs more than one task."""
    if value == "auto":
        return shard_from_env() or Shard(0, 1)
    if value is not None:
        return parse_shard(value)
    found = shard_from_env()
    return found if found is not None and found.count > 1 else None


def _db_path(db: Path | None, config: Config | None) -> Path:
    return db or (config.db if config is not None else None) or DEFAULT_DB


@contextmanager
def _open_catalog(path: Path, must_exist: bool, write: bool = False) -> Iterator[Catalog]:
    """The catalog at `path`; `write`: held exclusively (`CatalogLock`) until it is closed. Commands that
    write it (scan, plan, merge, apply --execute, near ignore) say so; readers share it."""
    if must_exist and not path.exists():
        raise UsageError(f"{path}: no catalog here; run `tierscan scan ... --db {path}` first")
    created = not path.exists()
    lock = CatalogLock(path) if write else None
    lock_file = lock.path if lock is not None and not lock.path.exists() else None

    def clean_up(kind: type[BaseException] | None, *_: object) -> None:
        if kind is not None:
            _remove_if_unused(path, lock_file)

    with ExitStack() as stack:
        if lock is not None:
            stack.enter_context(lock)
        if created:
            stack.push(clean_up)  # runs after the catalog closes, before the lock is released
        yield stack.enter_context(Catalog(path))


def _remove_if_unused(path: Path, lock_file: Path | None) -> None:
    """A command that failed (a bad target, no credentials, Ctrl-C before anything was committed) leaves
    no catalog behind when it created one and wrote nothing into it. The lock file goes too when this
    command created it: it still holds the lock, so another command that opened the file meanwhile was
    refused, and one that comes later makes a new one."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as db:
            used = db.execute("SELECT EXISTS (SELECT 1 FROM objects) OR EXISTS (SELECT 1 FROM not_duplicates) "
                              "OR EXISTS (SELECT 1 FROM findings)").fetchone()[0]
    except sqlite3.Error:
        return  # not readable as a catalog of ours: leave it
    if not used:
        for created in (path, Path(f"{path}-wal"), Path(f"{path}-shm"), *([lock_file] if lock_file else [])):
            created.unlink(missing_ok=True)


def _warn_unmatched(patterns: list[str]) -> None:
    for pattern in patterns:
        click.echo(terminal_safe(f"warning: config `buckets: {pattern}` matches no scanned bucket or object; "
                                 "its settings apply to nothing"), err=True)


def _published(run: str) -> None:
    click.echo(terminal_safe(f"results: {run} (latest)"), err=True)


def _exit_for(report: ReportStream, fail_on: str | None) -> None:
    if fail_on is None:
        return
    threshold = Severity(fail_on).rank
    worst = sum(n for (_, severity), n in report.findings_by.items() if severity.rank >= threshold)
    if worst:
        click.echo(f"{worst} finding(s) at or above {fail_on}", err=True)
        sys.exit(1)


EXIT_INCOMPLETE = 3  # a target could not be reached or used, or a request kept failing
EXIT_INTERRUPTED = 130  # Ctrl-C, as shells report a process SIGINT ended


class Interrupted(Exception):
    """Ctrl-C, with what the command had committed when it came."""


def _guard(fn: Callable[..., None]) -> Callable[..., None]:
    """Turn the errors a user can act on into one line and the CLI contract's exit status: UsageError 2;
    TargetError, or an ObjectError that ended a command (retries spent), 3; Ctrl-C 130. `--debug` prints
    the traceback first."""

    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            fn(*args, **kwargs)
        except UsageError as exc:
            _fail(exc, 2)
        except (TargetError, ObjectError) as exc:
            _fail(exc, EXIT_INCOMPLETE)
        except Interrupted as exc:
            _fail(exc, EXIT_INTERRUPTED)
        except KeyboardInterrupt as exc:
            _fail(Interrupted("interrupted"), EXIT_INTERRUPTED, exc)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _fail(exc: BaseException, status: int, cause: BaseException | None = None) -> None:
    """One line on stderr, after the traceback with `--debug`; then exit with `status`."""
    context = click.get_current_context(silent=True)
    if context is not None and context.find_root().params.get("debug"):
        shown = cause or exc
        replaced = shown.__context__ if shown.__suppress_context__ else None
        if replaced is not None:  # the SDK's error a connector translated (`raise ... from None`)
            _safe_excepthook(type(replaced), replaced, replaced.__traceback__)
        _safe_excepthook(type(shown), shown, shown.__traceback__)
    click.echo(terminal_safe(f"tierscan: {exc}", keep_newlines=True), err=True)
    sys.exit(status)


config_option = click.option(
    "--config", "config_path", metavar="FILE|URI",
    help="Config (YAML): buckets' tiers and regions, thresholds, policies, prices. A file or an object URI "
         "(s3://, gs://, az://); default: the YAML in $TIERSCAN_CONFIG when set, else for commands that read "
         "a catalog the settings its scan stored.",
)
db_option = click.option(
    "--db", type=click.Path(dir_okay=False, path_type=Path),
    help=f"Catalog file (SQLite). Default: the config's `db`, else ./{DEFAULT_DB}.",
)
fail_on_option = click.option(
    "--fail-on", type=click.Choice(SEVERITIES), help="Exit 1 when a finding has at least this severity.",
)
output_option = click.option(
    "--output", "-o", type=click.Path(dir_okay=False, path_type=Path), help="Write to this file, not stdout.",
)
output_dir_option = click.option(
    "--output-dir", type=click.Path(file_okay=False, path_type=Path),
    help="Also write DIR/report.json and, per policy, DIR/POLICY/resources.json of what it matched.",
)
results_option = click.option(
    "--results", metavar="URI",
    help="Results location (s3://BUCKET/PREFIX, gs://..., az://ACCOUNT/CONTAINER/PREFIX or a folder): write "
         "the report, inventory and policy outputs under PREFIX/runs/<UTC time>/ and point PREFIX/latest at it.",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tierscan")
@click.option("--debug", is_flag=True, help="Print the traceback of an error before its one-line message (it may "
              "quote request URLs, signed ones included).")
def cli(debug: bool) -> None:
    """Audit image assets in object stores: exact and near duplicates across tiers, regions and
    jurisdictions, personal data in metadata, and what removing redundant copies saves.

    Start with `tierscan scan PATH` on a folder whose top-level sub-folders stand for buckets.
    """


def _workers_option(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    """--workers within `tierscan.scanner.core.config.workers_bound`: a usage error (exit 2) past it."""
    try:
        return value if value is None else check_workers(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from exc


@cli.command()
@click.argument("targets", nargs=-1)
@config_option
@db_option
@fail_on_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "none"]), default="table",
              show_default=True, help="Print the report when the scan ends (none: print nothing).")
@output_option
@click.option("--workers", type=click.IntRange(min=1), callback=_workers_option,
              help="Fingerprint processes (default: one per core; at most 4 per core and 256).")
@click.option("--object-timeout", "object_timeout", type=click.FloatRange(min=0, min_open=True),
              help="Seconds one object may take to fingerprint or parse before it is skipped as a parse "
                   "timeout and its worker replaced (default 30: scan.object_timeout).")
@click.option("--concurrency", type=click.IntRange(min=1), help="Object reads in flight (default 16).")
@click.option("--no-perceptual", "no_perceptual", is_flag=True,
              help="Exact + EXIF audit alone: no pixels decoded, so images are read by ranges (head, tail, "
                   "the EXIF ranges their format needs) and whole only where size, head and tail collide.")
@click.option("--no-signatures", "no_signatures", is_flag=True,
              help="Perceptual hashes (pHash, dHash) without near-duplicate signatures: about half the CPU "
                   "an image; near groups only by both global hashes being close (no crops or flips).")
@click.option("--no-faces", "no_faces", is_flag=True,
              help="Count no faces in the pixels (scan.faces: false), and forget those the catalog holds.")
@click.option("--no-thumbnails", "no_thumbnails", is_flag=True,
              help="Make no thumbnails for the HTML report (scan.thumbnails: false), and delete those the "
                   "catalog holds: a thumbnail is a copy of a possibly personal image.")
@click.option("--max-retrieval-usd", "max_retrieval", type=click.FloatRange(min=0),
              help="Stop reading cool/cold data once its retrieval fees would pass this many USD; objects "
                   "left unread are reported (status failed, read again by the next scan).")
@output_dir_option
@results_option
@click.option("--shard", "shard_text", metavar="I/N|auto",
              help="Read and fingerprint only shard I of N (0-based; objects split by a stable hash of their "
                   "URI) into a part catalog for `tierscan merge`. Default: CLOUD_RUN_TASK_INDEX/COUNT or "
                   "AWS_BATCH_JOB_ARRAY_INDEX with AWS_BATCH_JOB_ARRAY_SIZE or TIERSCAN_SHARD_COUNT, when "
                   "more than one task runs.")
@_guard
def scan(targets: tuple[str, ...], config_path: str | None, db: Path | None, fail_on: str | None,
         fmt: str, output: Path | None, workers: int | None, object_timeout: float | None,
         concurrency: int | None, no_perceptual: bool, no_signatures: bool, no_faces: bool, no_thumbnails: bool,
         max_retrieval: float | None, output_dir: Path | None, results: str | None, shard_text: str | None) -> None:
    """List, read, fingerprint, group and evaluate policies; then print the report.

    TARGETS are local folders (each top-level sub-folder is a bucket) or URIs: s3://BUCKET[/PREFIX],
    gs://BUCKET[/PREFIX], az://ACCOUNT/CONTAINER[/PREFIX]; s3://* and gs://* mean every visible bucket.
    Incremental: objects whose size, modified time and ETag/version are unchanged are not read again.
    A shard scan (`--shard`) prints no report; with `--results` it fetches its part catalog from
    RESULTS/shards/ when --db does not exist yet, and puts it back there when done.
    """
    config = _scan_config(config_path, workers=workers, concurrency=concurrency, no_perceptual=no_perceptual,
                          no_signatures=no_signatures, max_retrieval=max_retrieval, object_timeout=object_timeout,
                          no_thumbnails=no_thumbnails, no_faces=no_faces)
    from tierscan.scanner.report import outputs
    from tierscan.scanner.scan.pipeline import run_scan

    shard = _shard(shard_text)
    path = _db_path(db, config)
    checked = _check_targets(list(targets) or config.targets)
    if shard is not None:
        _shard_scan(config, path, checked, shard, results)
        return
    with _open_catalog(path, must_exist=False, write=True) as catalog:
        with RichProgress() as progress, _resumable(path):
            asyncio.run(run_scan(config, catalog, checked, progress))
        _warn_unmatched(outputs.unmatched_bucket_settings(config, catalog))
        report = outputs.report_stream(config, catalog)
        if output_dir:
            outputs.write_output_dir(output_dir, config, catalog, report)
        if results:
            _published(outputs.publish(results, config, catalog, report))
        if fmt != "none":
            outputs.emit(report, fmt, output, catalog=catalog)
    from tierscan.scanner.report.build import summary_line

    click.echo(summary_line(report), err=True)
    scanned = report.head.scan
    if scanned.left_unread:
        click.echo(f"retrieval budget reached: {scanned.left_unread:,} objects "
                   f"({scanned.left_unread_bytes:,} bytes) left unread; the next scan reads them", err=True)
    _exit_for(report, fail_on)


@contextmanager
def _resumable(path: Path) -> Iterator[None]:
    """Ctrl-C during a scan: `Interrupted`, saying how many objects' results the catalog holds."""
    try:
        yield
    except KeyboardInterrupt:
        with Catalog(path) as catalog:
            counts = catalog.counts()
        done = sum(n for status, n in counts.items() if status not in ("listed", "gone"))
        raise Interrupted(f"interrupted: {path} holds the results of {done:,} objects ({counts.get('listed', 0):,} "
                          "listed objects not read yet); the same command resumes from there") from None


def _scan_config(config_path: str | None, *, workers: int | None = None, concurrency: int | None = None,
                 no_perceptual: bool = False, no_signatures: bool = False,
                 max_retrieval: float | None = None, object_timeout: float | None = None,
                 no_thumbnails: bool = False, no_faces: bool = False) -> Config:
    config = _config(config_path)
    updates: dict[str, object] = {k: v for k, v in {"workers": workers, "concurrency": concurrency,
                                                    "object_timeout": object_timeout}.items() if v}
    if no_perceptual:
        updates["perceptual"] = False
    if no_signatures:
        updates["signatures"] = False
    if no_thumbnails:
        updates["thumbnails"] = False
    if no_faces:
        updates["faces"] = False
    if max_retrieval is not None:
        updates["max_retrieval_usd"] = max_retrieval
    if updates:
        config = config.model_copy(update={"scan": config.scan.model_copy(update=updates)})
    return config


@cli.command("plan")
@click.argument("targets", nargs=-1)
@config_option
@db_option
@click.option("--no-perceptual", "no_perceptual", is_flag=True, help="Plan the exact + EXIF audit alone.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
@_guard
def plan_command(targets: tuple[str, ...], config_path: str | None, db: Path | None, no_perceptual: bool,
                 fmt: str) -> None:
    """Print what a scan would read, before reading anything: requests, bytes and fees per tier.

    Lists the targets into the catalog (listing requests only); objects unchanged since the last scan
    cost nothing. Whole reads that head/tail narrowing may still need are shown as "at most".
    """
    from tierscan.scanner.scan.pipeline import plan_scan

    config = _scan_config(config_path, no_perceptual=no_perceptual)
    with _open_catalog(_db_path(db, config), must_exist=False, write=True) as catalog, RichProgress() as progress:
        planned = asyncio.run(plan_scan(config, catalog, _check_targets(list(targets) or config.targets),
                                        progress))
    rows = [dataclasses.asdict(c) for c in planned.tiers.values()]
    why = None if rows else planned.why_nothing()
    if fmt == "json":
        click.echo(json.dumps({"tiers": rows, "listed": planned.listed, "unchanged": planned.unchanged,
                               **({"nothing_to_read": why} if why else {})}, indent=2))
        return
    if why:
        click.echo(f"nothing to read: {why}")
        return
    click.echo(f"{'tier':<8} {'objects':>9} {'requests':>9} {'bytes':>15} {'retrieval USD':>14} "
               f"{'request USD':>12} {'+ whole reads at most (bytes)':>30}")
    total = {"tier": "total", **{k: sum(x[k] for x in rows) for k in rows[0] if k != "tier"}}
    for r in [*rows, total]:
        click.echo(f"{r['tier']:<8} {r['objects']:>9,} {r['requests']:>9,} {r['bytes']:>15,} "
                   f"{r['retrieval_usd']:>14.6f} {r['request_usd']:>12.6f} {r['full_bytes_at_most']:>30,}")


def _shard_scan(config: Config, path: Path, targets: list[str], shard: Shard, results: str | None) -> None:
    """One shard's scan into its part catalog, kept in RESULTS/shards/ between runs when given."""
    from tierscan.scanner.scan.pipeline import run_scan

    store = None
    if results:
        from tierscan.scanner.report.publish import open_store

        store = open_store(results)
    with CatalogLock(path):  # from fetching the last part to putting this one back
        previous = store.get(f"shards/{shard.part_name}") if store is not None and not path.exists() else None
        if previous is not None:
            with atomic_write(path, "wb") as fh:  # the last run's part: this run reads only what changed
                fh.write(previous)
        with _open_catalog(path, must_exist=False) as catalog, RichProgress() as progress, _resumable(path):
            stats = asyncio.run(run_scan(config, catalog, targets, progress, shard=shard))
        # Closed: SQLite has checkpointed its WAL into the file, which is now complete on its own.
        if store is not None:
            store.put(f"shards/{shard.part_name}", path.read_bytes())
    click.echo(f"shard {shard}: listed {stats.listed}, fingerprinted {stats.fingerprinted}, read "
               f"{stats.bytes_read} bytes into {path}; combine the parts with `tierscan merge`", err=True)


@cli.command()
@click.argument("parts", nargs=-1, required=True)
@config_option
@db_option
@output_dir_option
@results_option
@_guard
def merge(parts: tuple[str, ...], config_path: str | None, db: Path | None, output_dir: Path | None,
          results: str | None) -> None:
    """Combine shard catalogs (`tierscan scan --shard I/N --db PART`) into --db, then group and evaluate
    policies, so that `tierscan report --db` reports the whole scan.

    PARTS are files or object URIs (e.g. s3://BUCKET/PREFIX/shards/part-0-of-4.db). Each part gives only
    its shard's objects; where parts disagree the newest identity wins and the conflict is listed on stderr.
    Without --config the merge uses the settings the parts were scanned with (they must agree).
    """
    from tierscan.scanner.report import outputs
    from tierscan.scanner.scan.merge import merge_catalogs

    given, name = _given_config(config_path)
    with tempfile.TemporaryDirectory(prefix="tierscan-parts-") as tmp:
        from tierscan.scanner.report.publish import local_parts

        paths = local_parts(parts, Path(tmp))
        with _open_catalog(_db_path(db, given), must_exist=False, write=True) as catalog:
            with RichProgress() as progress:
                result = merge_catalogs(paths, catalog, given, config_name=name, progress=progress)
            for line in result.warnings:
                click.echo(terminal_safe(line), err=True)
            config = result.config
            report = outputs.report_stream(config, catalog)
            if output_dir:
                outputs.write_output_dir(output_dir, config, catalog, report)
            if results:
                _published(outputs.publish(results, config, catalog, report))
    for line in result.conflicts:
        click.echo(terminal_safe(f"conflict: {line}"), err=True)
    from tierscan.scanner.report.build import summary_line

    click.echo(f"merged {result.parts} part(s): {result.objects} objects, {len(result.conflicts)} conflict(s)",
               err=True)
    click.echo(summary_line(report), err=True)


@cli.command()
@config_option
@db_option
@fail_on_option
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv", "html", "none"]), default="table",
              show_default=True, help="none: print nothing (with --output-dir or --fail-on).")
@click.option("--csv-table", type=click.Choice(["buckets", "groups", "findings"]), default="buckets",
              show_default=True, help="With --format csv: a row per bucket, per group member or per finding.")
@output_option
@output_dir_option
@_guard
def report(config_path: str | None, db: Path | None, fail_on: str | None, fmt: str, csv_table: str,
           output: Path | None, output_dir: Path | None) -> None:
    """Print the report of the last scan: per-bucket savings, duplicate groups, findings, skipped objects.

    `--format csv` writes one table (`--csv-table`); `--format html` writes one page with charts and the
    groups' pictures that works offline (GPS rounded to about 1 km), best with `--output report.html`
    (thumbnails go to report_files/ beside it; inline on standard output). Prices are the ones the scan
    stored in the catalog, unless --config is given.
    """
    from tierscan.scanner.report import outputs
    from tierscan.scanner.scan.settings import PRICED

    given = _given_config(config_path)
    with _open_catalog(_db_path(db, given[0]), must_exist=True) as catalog:
        config = _catalog_config(catalog, given, PRICED)
        _warn_unmatched(outputs.unmatched_bucket_settings(config, catalog))
        rep = outputs.report_stream(config, catalog)
        if output_dir:
            outputs.write_output_dir(output_dir, config, catalog, rep)
        if fmt != "none":
            outputs.emit_catalog(rep, fmt, output, config, catalog, csv_table)
    _exit_for(rep, fail_on)


@cli.command()
@config_option
@db_option
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv", "parquet"]), default="jsonl",
              show_default=True)
@output_option
@_guard
def inventory(config_path: str | None, db: Path | None, fmt: str, output: Path | None) -> None:
    """Write the audit inventory: one record per object, with exact EXIF values (GPS is not rounded).

    `--format parquet` (needs `--output` and the `parquet` extra) writes the CSV's flattened columns, typed.
    """
    from tierscan.scanner.report import outputs

    config = _config(config_path)
    if fmt == "parquet":
        if output is None:
            raise UsageError("--format parquet writes a binary file: give --output FILE")
        from tierscan.scanner.report.inventory_parquet import write_parquet

        with _open_catalog(_db_path(db, config), must_exist=True) as catalog:
            write_parquet(catalog.records(), output)
        return
    with _open_catalog(_db_path(db, config), must_exist=True) as catalog:
        outputs.write_inventory(catalog, "jsonl" if fmt == "jsonl" else "csv", output)


@cli.group()
def near() -> None:
    """User decisions about near-duplicate groups."""


@near.command("ignore")
@click.argument("uris", nargs=-1)
@click.option("--decisions", "decisions_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A reviewer's decisions file, downloaded from the HTML report: each member marked "
                   "'not a duplicate' is recorded apart from its group's centre (instead of URIS).")
@config_option
@db_option
@_guard
def near_ignore(uris: tuple[str, ...], decisions_path: Path | None, config_path: str | None,
                db: Path | None) -> None:
    """Mark URIS (two or more objects in the catalog) as not duplicates of each other, then regroup.

    Stored in the catalog, so every later scan keeps them apart: no near group ever holds two of them.
    `near.not_duplicates` in the config file does the same from a file; --decisions from the HTML report's
    decisions file (URIs the catalog does not hold are named and left out). Regroups with the settings
    the scan stored in the catalog, unless --config is given.
    """
    from tierscan.scanner.core.decisions import load_decisions

    if decisions_path is not None and uris:
        raise UsageError("near ignore: give URIS or --decisions FILE, not both")
    pairs: list[list[str]] = []
    if decisions_path is None:
        # Local files are stored as file:// URIs of their resolved path: accept the path as typed.
        pairs = [sorted({u if "://" in u else Path(u).resolve().as_uri() for u in uris})]
        if len(pairs[0]) < 2:
            raise UsageError("near ignore: name at least two different URIs")
    else:
        pairs = [list(pair) for pair in load_decisions(decisions_path).pairs()]
    given = _given_config(config_path)
    from tierscan.scanner.scan.pipeline import evaluate_results
    from tierscan.scanner.scan.settings import EVALUATED, store_settings

    with _open_catalog(_db_path(db, given[0]), must_exist=True, write=True) as catalog:
        config = _catalog_config(catalog, given, EVALUATED)
        named = {uri for pair in pairs for uri in pair}
        unknown = sorted(named - catalog.known(named))
        if unknown and decisions_path is None:
            raise UsageError(f"near ignore: not in the catalog: {', '.join(unknown)}")
        for uri in unknown:
            click.echo(terminal_safe(f"near ignore: not in the catalog, left out: {uri}"), err=True)
        if not any(set(pair).isdisjoint(unknown) for pair in pairs):
            click.echo("near ignore: no not-a-duplicate pair to record; nothing changed", err=True)
            return
        added = sum(catalog.add_not_duplicates(pair) for pair in pairs if set(pair).isdisjoint(unknown))
        with RichProgress() as progress:
            evaluate_results(config, catalog, datetime.now(UTC), progress=progress)
        store_settings(config, catalog)  # the groups and findings now follow these settings
    click.echo(f"recorded {added} new not-a-duplicate pair(s); groups updated", err=True)


@near.command("ignored")
@config_option
@db_option
@_guard
def near_ignored(config_path: str | None, db: Path | None) -> None:
    """List the pairs recorded with `tierscan near ignore`, one tab-separated pair a line."""
    config = _config(config_path)
    with _open_catalog(_db_path(db, config), must_exist=True) as catalog:
        for a, b in catalog.not_duplicates():
            click.echo(f"{terminal_safe(a)}\t{terminal_safe(b)}")


@cli.group()
def policy() -> None:
    """Check and list policies."""


@policy.command("validate")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@_guard
def policy_validate(files: tuple[Path, ...]) -> None:
    """Check policy files without scanning; every error names file:line, policy and field (exit 2)."""
    errors = validate_files(list(files))
    if errors:
        for line in errors:
            click.echo(terminal_safe(line, keep_newlines=True), err=True)
        sys.exit(2)
    click.echo(f"{len(files)} file(s) valid")


@policy.command("list")
@config_option
@_guard
def policy_list(config_path: str | None) -> None:
    """Show the built-in packs (`tierscan.policies.packs` in the config selects them; `builtin` means all), then
    the policies a scan would evaluate: the selected packs' and the config's files'."""
    from tierscan.scanner.report import outputs

    config = _config(config_path)
    policy_set = load_policies(packs=config.policies.packs, files=config.policies.files)
    packs = Table(title="Packs")
    for column in ("pack", "selected", "policies", "description"):
        packs.add_column(column)
    for pack in describe_packs(config.policies.packs):
        packs.add_row(terminal_text(pack["name"]), "yes" if pack["selected"] else "no",
                      terminal_text(", ".join(pack["policies"])), terminal_text(pack["description"]))
    outputs.console().print(packs)
    table = Table(title="Policies")
    for column in ("pack", "name", "resource", "severity", "filters", "actions", "description"):
        table.add_column(column)
    for p in describe_policies(policy_set):
        table.add_row(*(terminal_text(cell) for cell in (p["pack"], p["name"], p["resource"], p["severity"],
                                                         p["filters"], ", ".join(p["actions"]), p["description"])))
    outputs.console().print(table)


@policy.command("schema")
def policy_schema_command() -> None:
    """Print the JSON Schema of policy files (generated from the registered filters and actions), for
    editors and CI checks."""
    click.echo(json.dumps(policy_schema(), indent=2))


@cli.group()
def prices() -> None:
    """Price tables: refresh list prices from the providers' public price APIs."""


@prices.command("refresh")
@click.option("--output", "-o", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="The price override file to write (name it under `prices:` in the config).")
@click.option("--region", "regions", multiple=True, metavar="PROVIDER:REGION",
              help="Fetch only these, e.g. s3:ap-east-1 (repeatable). Default: Hong Kong, Mainland China and "
                   "US regions of s3, gcs and azure.")
@click.option("--gcp-api-key", envvar="TIERSCAN_GCP_API_KEY",
              help="API key for the Google Cloud Billing Catalog (env TIERSCAN_GCP_API_KEY); gcs is skipped "
                   "without one.")
@click.option("--aws-endpoint", hidden=True)
@click.option("--aws-cn-endpoint", hidden=True)
@click.option("--gcp-endpoint", hidden=True)
@click.option("--azure-endpoint", hidden=True)
@_guard
def prices_refresh(output: Path, regions: tuple[str, ...], gcp_api_key: str | None, aws_endpoint: str | None,
                   aws_cn_endpoint: str | None, gcp_endpoint: str | None, azure_endpoint: str | None) -> None:
    """Fetch S3, GCS and Azure Blob list prices (AWS Price List, Google Cloud Billing Catalog, Azure Retail
    Prices) and write them as a price override file with each source URL and today's date.

    Needs the `prices` extra (aiohttp). Exit status 1 when some region could not be fetched (the file still
    holds the rest).
    """
    from datetime import date

    from tierscan.scanner.pricing.refresh import DEFAULT_REGIONS, Endpoints, refresh, write_override

    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise UsageError("prices refresh needs aiohttp: pip install 'tierscan[prices]'") from exc
    wanted: dict[str, list[str]] = {}
    for item in regions:
        provider, sep, region = item.partition(":")
        if not sep or provider not in DEFAULT_REGIONS or not region:
            raise UsageError(f"--region {item}: expected PROVIDER:REGION with PROVIDER one of s3, gcs, azure")
        wanted.setdefault(provider, []).append(region)
    overrides = {"aws": aws_endpoint, "aws_cn": aws_cn_endpoint, "gcp": gcp_endpoint, "azure": azure_endpoint}
    endpoints = Endpoints(**{k: v for k, v in overrides.items() if v})
    result = asyncio.run(refresh(wanted or DEFAULT_REGIONS, endpoints, gcp_api_key))
    for error in result.errors:
        click.echo(terminal_safe(f"tierscan: {error}"), err=True)
    write_override(result.fetched, output, date.today())
    click.echo(terminal_safe(f"{output}: {len(result.fetched)} region(s): "
                             + ", ".join(f"{f.provider}/{f.region}" for f in result.fetched)), err=True)
    if result.errors:
        sys.exit(1)


@cli.command("apply")
@config_option
@db_option
@click.option("--action", type=click.Choice([a.value for a in Action]),
              help="What to do to the objects in scope (see --policy; never to a group master). One that the "
                   "backend of an object in scope cannot do is an error.")
@click.option("--to", metavar="PREFIX|URI|FOLDER|CLASS",
              help="quarantine: a prefix in the same bucket, a bucket URI (s3://QUARANTINE/PREFIX), or a folder "
                   "for local files; transition: the provider's storage class (e.g. GLACIER_IR, COLDLINE, Cool).")
@click.option("--tag", "tags", multiple=True, metavar="KEY=VALUE",
              help="tag: the tags to add (default tierscan-policy and tierscan-group).")
@click.option("--policy", "policies", multiple=True, metavar="NAME",
              help="Act on what these policies' findings name, near-duplicate members too (default: only the "
                   "redundant copies in exact groups that findings name).")
@click.option("--findings", "findings_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Take findings from this report JSON instead of the catalog's.")
@click.option("--plan", "plan_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan here (nothing changes).")
@click.option("--execute", "execute_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A plan to review (without --approve) or to run (with --approve DIGEST and --journal).")
@click.option("--approve", metavar="DIGEST",
              help=f"The digest printed when the plan was reviewed (its first {APPROVE_MIN} or more hex digits).")
@click.option("--journal", "journal_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The journal to write (a new file); `tierscan undo JOURNAL` reverses tag and quarantine.")
@click.option("--decisions", "decisions_path", type=click.Path(dir_okay=False, path_type=Path),
              help="A reviewer's decisions file from the HTML report: the plan keeps only objects of the groups "
                   "it reviewed that it did not mark keep or not a duplicate (never more than without it).")
@_guard
def apply_command(config_path: str | None, db: Path | None, action: str | None, to: str | None,
                  tags: tuple[str, ...], policies: tuple[str, ...], findings_path: Path | None,
                  plan_path: Path | None, execute_path: Path | None, approve: str | None,
                  journal_path: Path | None, decisions_path: Path | None) -> None:
    """Act on findings, in three steps: write a plan (--plan), review it (--execute PLAN), then run the
    reviewed plan (--execute PLAN --approve DIGEST --journal J.jsonl). Before each change the object's
    ETag/generation is checked against the plan and a journal entry is fsynced; masters are never touched,
    and a copy is deleted or moved away only once its master is proven to hold the same bytes now.
    """
    from tierscan.scanner.remediate import apply as remediation

    given = _given_config(config_path)
    if execute_path is not None:
        if plan_path or action or decisions_path:
            raise UsageError("--execute runs an existing plan: leave out --plan, --action and --decisions")
        plan = remediation.load_plan(execute_path)
        if approve is None:
            catalog_path = Path(db or plan["db"])
            if catalog_path.exists():  # the review marks what execution would skip against it
                with _open_catalog(catalog_path, must_exist=True) as catalog:
                    lines = remediation.describe_plan(plan, remediation.review_problems(plan, catalog))
            else:
                lines = [*remediation.describe_plan(plan),
                         f"(catalog {str(catalog_path)!r} not found: items not checked)"]
            for line in lines:
                click.echo(terminal_safe(line))
            digest = remediation.plan_digest(plan)
            click.echo(f"nothing changed. To apply: tierscan apply --execute {execute_path} --approve "
                       f"{digest[:APPROVE_MIN]} --journal JOURNAL.jsonl", err=True)
            return
        if journal_path is None:
            raise UsageError("--execute with --approve needs --journal FILE (a new file)")
        # Held while objects change: a scan meanwhile would list them half moved.
        with _open_catalog(Path(db or plan["db"]), must_exist=True, write=True) as catalog:
            config = _catalog_config(catalog, given, ())  # the connectors' settings: the scan's by default
            result = remediation.execute_plan(plan, approve, journal_path, catalog, config, plan_path=execute_path)
        for uri, why in result.skipped:
            click.echo(terminal_safe(f"skipped {uri!r}: {why}"), err=True)
        for uri, why in result.failed:
            click.echo(terminal_safe(f"failed {uri!r}: {why}"), err=True)
        click.echo(f"{plan['action']}: {len(result.done)} done, {len(result.skipped)} skipped, "
                   f"{len(result.failed)} failed; journal {journal_path}", err=True)
        if result.failed:
            sys.exit(1)
        return
    if action is None or plan_path is None:
        raise UsageError("apply: give --action and --plan to write a plan, or --execute PLAN to review or run one")
    path = _db_path(db, given[0])
    from tierscan.scanner.core.decisions import load_decisions

    decisions = load_decisions(decisions_path) if decisions_path is not None else None
    with _open_catalog(path, must_exist=True) as catalog:
        # Names what of a given config the catalog's findings do not follow.
        config = _catalog_config(catalog, given, ())
        # The config's policies are known names too (one without findings gives an empty plan, not an error).
        configured = [p.name for p in load_policies(packs=config.policies.packs, files=config.policies.files)] \
            if policies else []
        plan = remediation.build_plan(catalog, path.resolve(), action, to=to, tags=remediation.parse_tags(tags),
                                      policies=policies, known_policies=configured,
                                      findings=remediation.findings_file(findings_path), decisions=decisions)
        if decisions is not None:
            for line in remediation.unknown_decisions(decisions, catalog):
                click.echo(terminal_safe(f"decisions: {line}"), err=True)
    remediation.write_plan(plan, plan_path)
    for line in remediation.describe_plan(plan):
        click.echo(terminal_safe(line))
    click.echo(f"plan written to {plan_path}; nothing changed. Review it, then: tierscan apply --execute "
               f"{plan_path} --approve {plan['digest'][:APPROVE_MIN]} --journal JOURNAL.jsonl", err=True)


@cli.command("undo")
@click.argument("journal", type=click.Path(dir_okay=False, path_type=Path))
@config_option
@_guard
def undo_command(journal: Path, config_path: str | None) -> None:
    """Reverse the tag and quarantine changes recorded in JOURNAL (newest first; safe to run again)."""
    from tierscan.scanner.remediate.apply import undo_journal

    result = undo_journal(journal, _config(config_path))
    for uri, why in result.not_undone:
        click.echo(terminal_safe(f"not undone {uri!r}: {why}"), err=True)
    click.echo(f"undo: {len(result.undone)} reversed, {len(result.not_undone)} not", err=True)
    if any(why.startswith("failed") for _, why in result.not_undone):
        sys.exit(1)


@cli.command("doctor")
@click.argument("targets", nargs=-1)
@config_option
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True,
              help="One line a check, or the checks as JSON (for scripts).")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=30.0, show_default=True,
              help="Seconds each check may take, its requests and retries included.")
@_guard
def doctor_command(targets: tuple[str, ...], config_path: str | None, fmt: str, timeout: float) -> None:
    """Check each target before a scan, one line a check: credentials and where they come from, the
    identity they resolve to, endpoint, region, listing (the first page only), a read of one object (64
    bytes at most), versioning and inventory reports; a failure says how to fix it.

    TARGETS as for `scan` (default: the config's `targets`). Nothing is written. Exit 0 when no check
    fails (warnings included), 3 when one does, 2 for a bad target or config.
    """
    from tierscan.scanner.scan import preflight

    config = _config(config_path)
    checked = _check_targets(list(targets) or config.targets)
    if not checked:
        raise UsageError("doctor: no targets: name them, or list them in the config's `targets`")
    results = asyncio.run(preflight.preflight(config, checked, timeout=timeout))
    if fmt == "json":
        click.echo(json.dumps(preflight.as_json(results), indent=2))
    else:
        for line in preflight.lines(results):
            click.echo(terminal_safe(line))
    click.echo(preflight.summary(results), err=True)
    if preflight.failed(results):
        sys.exit(EXIT_INCOMPLETE)
class _SafeFormatter(logging.Formatter):
    """Warnings quote bucket names and keys: escaped for the terminal like every other line."""

    def format(self, record: logging.LogRecord) -> str:
        return terminal_safe(super().format(record), keep_newlines=True)


def _safe_excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    """An unexpected error's traceback quotes whatever its message holds (a key): escaped like the rest."""
    sys.stderr.write(terminal_safe("".join(traceback.format_exception(kind, value, tb)), keep_newlines=True))


def main() -> None:
    handler = logging.StreamHandler()  # stderr, as Python's last-resort handler did
    handler.setFormatter(_SafeFormatter("%(message)s"))
    logging.getLogger("tierscan").addHandler(handler)
    sys.excepthook = _safe_excepthook
    try:
        cli()
    finally:
        # Everything the command wrote is closed by now. The interpreter's last collections walk every
        # object left (numba's compiled kernels leave many): frozen, they are skipped, and the process
        # ends at once rather than a third of a second later.
        gc.freeze()
