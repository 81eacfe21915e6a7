"""Hostile policy files: nothing in one may exhaust memory, crash the loader or stall a scan. YAML aliases,
deep nesting, oversized and non-UTF-8 files are refused with file:line errors; regexes match in linear
time (RE2), and what RE2 cannot express fails validation naming the policy and field."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from tierscan.policies import load_policies, validate_files
from tierscan.policies.source import MAX_BYTES, MAX_DEPTH
from tierscan.scanner.core.errors import UsageError

DATA = Path(__file__).parent / "data" / "policies"
REPO = Path(__file__).resolve().parents[1]
LAUGHS = DATA / "billion_laughs.yaml"
GUARD = 120  # seconds: only a guard against a hang, far above the time any of these takes


def tierscan(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tierscan.scanner", *args], check=False, capture_output=True,
                          text=True, timeout=GUARD, cwd=REPO, env={**os.environ, "NO_COLOR": "1"})


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def policy_with(flt: str) -> str:
    return f"policies:\n  - name: one\n    resource: object\n    filters:\n      - {flt}\n"


# --------------------------------------------------------------------------------------------- YAML


@pytest.mark.slow
def test_validate_refuses_aliases_naming_file_and_line():
    result = tierscan("policy", "validate", str(LAUGHS))
    assert result.returncode == 2, result.stdout
    first_alias = next(n for n, line in enumerate(LAUGHS.read_text().splitlines(), 1) if "*a" in line)
    assert result.stderr.startswith(f"{LAUGHS}:{first_alias}: "), result.stderr
    assert "YAML aliases (*a) are not allowed in policy files" in result.stderr


@pytest.mark.slow
def test_scan_and_list_refuse_a_policy_file_with_aliases(tmp_path):
    config = write(tmp_path, f"policies: {{packs: [], files: [{LAUGHS}]}}\n", "tierscan.yaml")
    result = tierscan("policy", "list", "--config", str(config))
    assert result.returncode != 0 and f"{LAUGHS}:" in result.stderr and "aliases" in result.stderr
    with pytest.raises(UsageError, match="aliases"):
        load_policies(packs=[], files=[LAUGHS])
    anchored = write(tmp_path, policy_with("{key: format, op: in, value: &formats [JPEG, PNG]}"))
    assert validate_files([anchored]) == []  # an anchor alone expands nothing


def test_deep_nesting_is_refused_not_a_crash(tmp_path):
    depth = 500  # past what PyYAML's recursive composer survives
    path = write(tmp_path, policy_with("{key: format, op: in, value: " + "[" * depth + "]" * depth + "}"))
    [error] = validate_files([path])
    assert error.startswith(f"{path}:5: not valid YAML: nested more than {MAX_DEPTH} levels deep"), error


def test_oversized_file_is_refused(tmp_path):
    path = write(tmp_path, policy_with("{key: format, value: JPEG}") + "#" * MAX_BYTES + "\n")
    [error] = validate_files([path])
    assert error == f"{path}: policy files are limited to {MAX_BYTES // 1024} KiB"


def test_non_utf8_file_is_refused(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes(policy_with("{key: format, value: caf\xe9}").encode("latin-1"))
    [error] = validate_files([path])
    assert error.startswith(f"{path}: not UTF-8 text"), error


def test_integer_python_refuses_to_build_is_an_error(tmp_path):
    path = write(tmp_path, policy_with("{key: size, op: gt, value: " + "9" * 5000 + "}"))
    [error] = validate_files([path])
    assert error.startswith(f"{path}: not valid YAML: "), error


def test_a_file_is_parsed_once_however_many_errors_it_has(tmp_path, monkeypatch):
    count = 200
    path = write(tmp_path, "policies:\n" + "".join(
        f"  - {{name: p{i}, resource: bucket}}\n" for i in range(count)))
    parses = 0
    compose_document = yaml.composer.Composer.compose_document

    def counting(self: yaml.composer.Composer) -> yaml.Node:
        nonlocal parses
        parses += 1
        return compose_document(self)

    monkeypatch.setattr(yaml.composer.Composer, "compose_document", counting)
    errors = validate_files([path])
    assert [e.split(": ", 1)[0] for e in errors] == [f"{path}:{2 + i}" for i in range(count)]
    assert parses == 1


# -------------------------------------------------------------------------------------------- regex


def test_backtracking_regex_evaluates_in_linear_time(tmp_path):
    """`^(a+)+$` makes a backtracking engine try 2^100 splits of a key of 100 `a`s and a `!`; RE2 answers
    at once, and still matches the key without the `!`."""
    path = write(tmp_path, policy_with("{key: key, op: regex, value: '^(a+)+$'}"))
    program = ("import sys; from tierscan.policies import load_policies;"
               "[p] = load_policies(packs=[], files=[sys.argv[1]]);"
               "print(*(p.filters[0]({'key': key}, None) for key in sys.argv[2:]))")
    keys = ["a" * 100 + "!", "a" * 100]
    result = subprocess.run([sys.executable, "-c", program, str(path), *keys], check=False, capture_output=True,
                            text=True, timeout=GUARD, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True"]


@pytest.mark.parametrize("pattern, reason", [
    (r"(a)\1", "invalid escape sequence"),  # backreference
    (r"^(?=.*2024)", "invalid perl operator"),  # lookahead
    (r"(?<!raw/)\.jpg$", "invalid perl operator"),  # lookbehind
])
@pytest.mark.slow
def test_regex_re2_cannot_express_fails_validation(tmp_path, pattern, reason):
    path = write(tmp_path, policy_with(f"{{key: key, op: regex, value: '{pattern}'}}"))
    result = tierscan("policy", "validate", str(path))
    assert result.returncode == 2
    [error] = result.stderr.splitlines()
    assert error.startswith(f"{path}:5: policy 'one': filters[0]: "), error
    assert f"invalid regex {pattern!r}: {reason}" in error
    assert "RE2 syntax" in error
