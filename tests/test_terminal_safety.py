"""Hostile object names on the terminal: rich markup in keys is printed literally (and no longer crashes
`scan`, `report` or `--results`), and escape sequences, bidi overrides and other controls are shown as
visible escapes wherever a name reaches stdout or stderr."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from tierscan.scanner.cli import cli
from tierscan.scanner.core.safe_text import terminal_safe
from tierscan.scanner.remediate.apply import PLAN_FORMAT
from tierscan.scanner.scan.catalog import Catalog

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data" / "exif"
PHOTO = (DATA / "exifpy__Canon_40D.jpg").read_bytes()
OTHER = (DATA / "exifpy__DSCN0010.jpg").read_bytes()
THIRD = (DATA / "exifpy__11-tests.jpg").read_bytes()

OSC8 = "\x1b]8;;http:evil.example\x07click\x1b]8;;\x07"  # an OSC 8 hyperlink (no "/" in a file name)
MARKUP = ("[/x]", "a.jpg"), ("[/x]", "b.jpg")  # folder, file: the key `[/x]/a.jpg`
LINK = ("[link=https:evil.example]Click here[", "link].jpg"), ("[link=https:evil.example]Click here[", "link]2.jpg")
ESCAPED = (f"{OSC8}.jpg", "\u202egpj.exe\x1b[2J\x9b31m.jpg")
BUCKET = "b\x1b[2J\u202e"  # a local bucket is a folder: its name is shown as it is
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


def run(*args: str, code: int = 0) -> tuple[str, str]:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result.stdout, result.stderr


def assert_no_raw_controls(text: str) -> None:
    assert not [ch for ch in RAW if ch in text], ascii(text)


@pytest.fixture
def estate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Three exact groups whose every copy has a hostile name, in a bucket with a hostile name; the
    working folder is tmp_path, so the table shows short relative paths."""
    monkeypatch.chdir(tmp_path)
    bucket = tmp_path / "estate" / BUCKET
    for (folder, name), data in [*((m, PHOTO) for m in MARKUP), *((m, THIRD) for m in LINK)]:
        (bucket / folder).mkdir(parents=True, exist_ok=True)
        (bucket / folder / name).write_bytes(data)
    for name in ESCAPED:
        (bucket / name).write_bytes(OTHER)
    return tmp_path / "estate"


def test_markup_and_escapes_in_keys_through_scan_report_and_results(estate: Path, tmp_path: Path) -> None:
    results = tmp_path / "results"
    out, _ = run("scan", str(estate), "--db", "t.db", "--results", str(results))
    reported, _ = run("report", "--db", "t.db")
    for text in (out, reported):
        assert "[/x]/" in text  # the key as it is, not eaten as a closing tag
        assert "[link=https:evil.example]Click here[" in text  # shown, not turned into a hidden hyperlink
        assert "\\x1b" in text and "b\\x1b[2J\\u202e" in text  # escape sequences, visibly
        assert_no_raw_controls(text)
    run_folder = results / json.loads((results / "latest").read_text())["run"]
    published = (run_folder / "report.txt").read_text(encoding="utf-8")
    assert "[/x]/" in published
    assert_no_raw_controls(published)


def on_a_terminal(cwd: Path, *args: str) -> str:
    """`tierscan ARGS` with its stdout on a pseudo-terminal: what the terminal received."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "tierscan.scanner", *args], cwd=cwd, stdout=secondary,
                            stderr=subprocess.DEVNULL)
    os.close(secondary)
    received = b""
    try:
        while select.select([main], [], [], 300)[0]:  # the timeout only guards against a hang
            try:
                chunk = os.read(main, 1 << 16)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            received += chunk
    finally:
        os.close(main)
        proc.kill()
        proc.wait()
    return received.decode("utf-8", "replace")


@pytest.mark.parametrize(("command", "fmt"), [("inventory", "csv"), ("inventory", "jsonl"), ("report", "csv"),
                                              ("report", "json")])
@pytest.mark.slow
def test_machine_formats_on_a_terminal_escape_names(estate: Path, command: str, fmt: str) -> None:
    """JSON and CSV keep exact names for pipes and files; on a terminal they are shown escaped."""
    run("scan", str(estate), "--db", "t.db", "--format", "none")
    piped, _ = run(command, "--db", "t.db", "--format", fmt)
    shown = on_a_terminal(estate.parent, command, "--db", "t.db", "--format", fmt)
    assert "[2J\\u202e" in shown and "[2J\u202e" in piped  # escaped on the terminal, exact in a pipe
    assert_no_raw_controls(shown)


def test_near_ignored_and_errors_quoting_keys_are_escaped(tmp_path: Path) -> None:
    """Bucket URIs name keys as they are (local files are percent-encoded, S3 keys are not)."""
    db = tmp_path / "t.db"
    with Catalog(db) as catalog:
        catalog.add_not_duplicates([f"s3://b/{OSC8}.jpg", "s3://b/\u202egpj.exe.jpg"])
    out, _ = run("near", "ignored", "--db", str(db))
    assert out.count("\t") == 1 and "s3://b/\\x1b]8;;http:evil.example\\x07click" in out and "\\u202e" in out
    assert_no_raw_controls(out)
    _, err = run("near", "ignore", "s3://b/gone\x1b[2J.jpg", "s3://b/x.jpg", "--db", str(db), code=2)
    assert "not in the catalog: s3://b/gone\\x1b[2J.jpg" in err
    assert_no_raw_controls(err)


def test_apply_review_escapes_the_plans_names(tmp_path: Path) -> None:
    """A plan names S3 keys as they are (no percent-encoding): its review must not replay them raw."""
    master_key = f"[/x]{OSC8}\u202e.jpg"
    item = {"uri": f"s3://b/copy{OSC8}.jpg", "scheme": "s3", "bucket": "b", "key": f"copy{OSC8}.jpg", "size": 3,
            "group_kind": "exact", "master": f"s3://b/{master_key}",
            "master_at": {"scheme": "s3", "bucket": "b", "key": master_key}}
    plan = {"format": PLAN_FORMAT, "version": 1, "db": str(tmp_path / "t.db"), "action": "delete", "to": None,
            "items": [item], "excluded": [{"uri": f"s3://b/{OSC8}", "reason": f"master {OSC8}"}]}
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan), encoding="utf-8")
    out, _ = run("apply", "--execute", str(path))
    assert "master s3 bucket 'b' key '[/x]\\x1b]8;;http:evil.example\\x07click" in out
    assert_no_raw_controls(out)


def test_policy_list_prints_descriptions_literally(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text('policies:\n  - name: odd\n    description: "see [/x] and [link=http:e.x]here[/link]'
                      ' \\e]8;;http:e.x\\aclick \\u202e"\n    resource: object\n    filters: []\n'
                      '    actions: [report]\n', encoding="utf-8")
    config = tmp_path / "tierscan.yaml"
    config.write_text(f"policies: {{packs: [], files: [{policy}]}}\n", encoding="utf-8")
    out, _ = run("policy", "list", "--config", str(config))
    assert "[/x]" in out and "[link=http:e.x]here[/link]" in out and "\\x1b]8;;" in out
    assert_no_raw_controls(out)


@pytest.mark.slow
def test_logged_warnings_and_tracebacks_quoting_a_key_are_escaped() -> None:
    code = (
        "import logging, sys\n"
        "from tierscan.scanner import cli\n"
        "sys.argv = ['tierscan', '--version']\n"
        "try:\n    cli.main()\nexcept SystemExit:\n    pass\n"
        "logging.getLogger('tierscan.connectors').warning('%s: skipped: %s', 's3://b\\x1b]8;;x\\x07', 'denied')\n"
        "raise RuntimeError('s3://b/k\\x1b[2J\\u202e: unexpected')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 1
    assert "s3://b\\x1b]8;;x\\x07: skipped: denied" in done.stderr
    assert "RuntimeError: s3://b/k\\x1b[2J\\u202e: unexpected" in done.stderr
    assert_no_raw_controls(done.stderr)


@pytest.mark.parametrize("ch", ["\x1b", "\x07", "\x08", "\r", "\n", "\t", "\x00", "\x7f", "\x85", "\x9b",
                                "\u200f", "\u202a", "\u202e", "\u2066", "\u2028", "\ufeff", "\udcff"])
def test_every_control_and_bidi_character_is_shown_as_an_escape(ch: str) -> None:
    visible = f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}"
    assert terminal_safe(f"a{ch}b") == f"a{visible}b"


def test_ordinary_names_are_unchanged() -> None:
    for name in ("photos/2024/相片 01.jpg", "café [draft] (1).png", "s3://bucket/a%20b.jpg", "x\\y"):
        assert terminal_safe(name) == name
    assert terminal_safe("line one\nline\x1btwo", keep_newlines=True) == "line one\nline\\x1btwo"
