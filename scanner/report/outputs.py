"""Where a report goes: built from the catalog, written in a format to a file or standard output, to a
dry-run folder, or published as one run to a results location. The command line picks; this writes."""

from __future__ import annotations

import io
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Literal, cast

from rich.console import Console

from tierscan.scanner.core.atomic import atomic_write
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.models import InventoryRecord
from tierscan.scanner.core.safe_text import terminal_safe
from tierscan.scanner.pricing.table import PriceTable
from tierscan.scanner.report.build import ReportStream, catalog_report, render_table, write_csv, write_json
from tierscan.scanner.report.exposure import Exposure, exposure as personal_data_exposure
from tierscan.scanner.report.review import ReviewContext, review_context
from tierscan.scanner.scan.catalog import Catalog

__all__ = [
    "console",
    "emit",
    "emit_catalog",
    "publish",
    "report_stream",
    "stdout",
    "unmatched_bucket_settings",
    "write_inventory",
    "write_output_dir",
]


def report_stream(config: Config, catalog: Catalog) -> ReportStream:
    """The catalog's report, its groups, findings and skipped objects read back as it is written out (the
    catalog must stay open until then)."""
    def by_bucket(r: InventoryRecord) -> str | None:
        return config.bucket_settings(r.bucket, r.uri).price_as

    price_as = by_bucket if any(settings.price_as for settings in config.buckets.values()) else None
    return catalog_report(catalog, PriceTable.of_config(config), price_as, datetime.now(UTC))


def unmatched_bucket_settings(config: Config, catalog: Catalog) -> list[str]:
    """The config's `buckets:` patterns that match no object in the catalog: a misspelt name whose
    tier, region or prices silently apply to nothing."""
    return [pattern for pattern in config.buckets if not catalog.holds_match(pattern)]


def console() -> Console:
    """The terminal's console; piped output gets a width that fits the tables, not rich's 80 columns."""
    found = Console()
    return found if found.is_terminal else Console(width=160)


class _TerminalSafe(io.TextIOBase):
    """A terminal as a text stream that escapes what it is given (`terminal_safe`, line by line)."""

    def __init__(self, out: IO[str]):
        self._out = out

    def write(self, text: str) -> int:
        self._out.write(terminal_safe(text, keep_newlines=True))
        return len(text)


def stdout() -> IO[str]:
    """Standard output for JSON, JSONL and CSV: exact for a pipe or a file; on a terminal, names are shown
    escaped like in the table (a key's escape sequence would otherwise reach the terminal raw)."""
    return cast(IO[str], _TerminalSafe(sys.stdout)) if sys.stdout.isatty() else sys.stdout


@contextmanager
def _text_output(output: Path | None) -> Iterator[IO[str]]:
    """`output` replaced once whole, else standard output (`stdout`)."""
    if output:
        with atomic_write(output) as fh:
            yield fh
    else:
        yield stdout()


def emit(report: ReportStream, fmt: str, output: Path | None, csv_table: str = "buckets",
         exposure: Exposure | None = None, review: ReviewContext | None = None,
         catalog: Catalog | None = None) -> None:
    """`report` as `fmt` (table, html, json or csv: `csv_table`'s rows) to `output`, else standard output.
    HTML with the `catalog`: with the groups' pictures, their thumbnails in a folder beside `output`
    (inline on standard output)."""
    if fmt == "table":
        if output:
            with atomic_write(output) as fh:
                render_table(report, Console(file=fh, width=140, no_color=True))
        else:
            render_table(report, console())
        return
    if fmt == "html":
        from tierscan.scanner.report.html import write_html
        from tierscan.scanner.report.html_groups import Pictures

        with (nullcontext(None) if catalog is None else Pictures.beside(catalog, output) if output
              else nullcontext(Pictures(catalog))) as pictures, _text_output(output) as fh:
            write_html(report, exposure or Exposure(), fh, review, pictures)
            if output is None:
                fh.write("\n")
        return
    if fmt == "json":
        with _text_output(output) as fh:
            write_json(report, fh)
            if output is None:
                fh.write("\n")
        return
    with _text_output(output) as fh:
        write_csv(report, fh, csv_table)  # type: ignore[arg-type]


def emit_catalog(report: ReportStream, fmt: str, output: Path | None, config: Config, catalog: Catalog,
                 csv_table: str = "buckets") -> None:
    """`emit` of a catalog's report: the HTML page also gets the catalog's personal-data exposure, review
    context (what was scanned, the objects with personal data) and the groups' pictures."""
    if fmt == "html":
        emit(report, fmt, output, csv_table, personal_data_exposure(catalog.records()),
             review_context(config, catalog), catalog)
    else:
        emit(report, fmt, output, csv_table)


def write_inventory(catalog: Catalog, fmt: Literal["jsonl", "csv"], output: Path | None) -> None:
    """The audit inventory as JSONL or CSV to `output` (replaced once whole), else standard output."""
    from tierscan.scanner.report.inventory import write_csv as inventory_csv, write_jsonl

    writer = write_jsonl if fmt == "jsonl" else inventory_csv
    if output:
        with atomic_write(output, newline="") as fh:
            writer(catalog.records(), fh)
    else:
        writer(catalog.records(), stdout())


def write_output_dir(out: Path, config: Config, catalog: Catalog, report: ReportStream) -> None:
    """Cloud-Custodian-style dry-run output: the report, and each policy's matched records."""
    from tierscan.scanner.scan.pipeline import write_policy_resources

    write_policy_resources(out, config, catalog, report.findings())
    emit(report, "json", out / "report.json")


def publish(results: str, config: Config, catalog: Catalog, report: ReportStream) -> str:
    """One run's outputs (report as JSON, HTML and text, inventory, policy folders) to the results location
    `results`; returns the run's URI."""
    from tierscan.scanner.report.inventory import write_jsonl
    from tierscan.scanner.report.publish import open_store, publish_run

    store = open_store(results)
    with tempfile.TemporaryDirectory(prefix="tierscan-run-") as tmp:
        out = Path(tmp)
        write_output_dir(out, config, catalog, report)
        emit_catalog(report, "html", out / "report.html", config, catalog)
        emit(report, "table", out / "report.txt")
        with atomic_write(out / "inventory.jsonl") as fh:
            write_jsonl(catalog.records(), fh)
        run = publish_run(store, out, datetime.now(UTC))
    return f"{store.uri}/{run}"
