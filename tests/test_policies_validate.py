"""Policy files: the validator's messages (file, line, policy, field), packs, the generated JSON schema, and
meta-lint of every registered filter and action."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any, Literal

import pytest
import yaml

from tierscan import policies
from tierscan.policies import (
    ACTIONS,
    FILTERS,
    builtin_pack_names,
    describe_policies,
    load_policies,
    policy_schema,
    validate_files,
)
from tierscan.policies.filters import BOOLEANS
from tierscan.policies.model import Element, Filter, Policy
from tierscan.policies.registry import Registry
from tierscan.scanner.core.errors import UsageError

DATA = Path(__file__).parent / "data" / "policies"


# (file, line, "policy 'name'" or "policy #n" or None, field or None, a fragment of the message)
BROKEN = [
    ("bad_yaml.yaml", 4, None, None, "not valid YAML"),
    ("unknown_key.yaml", 6, "policy 'tiers-with-typo'", "actoins",
     "unknown key (did you mean 'actions'?); valid keys: actions, description, filters, name, resource,"
     " severity"),
    ("bad_op.yaml", 6, "policy 'jpeg-only'", "filters[0].op",
     "Input should be 'eq', 'ne', 'gt', 'gte', 'lt', 'lte', 'in', 'not-in', 'contains', 'glob', 'regex',"
     " 'present' or 'absent' (got 'equals')"),
    ("unknown_filter.yaml", 7, "policy 'tier-typo'", "filters[1].type",
     "unknown filter type 'spans-tier' (did you mean 'spans-tiers'?); valid choices: age, bucket,"),
    ("missing_name.yaml", 4, "policy #2", "name", "Field required"),
    ("wrong_resource.yaml", 3, "policy 'buckets-are-not-resources'", "resource",
     "Input should be 'object' or 'group' (got 'bucket')"),
    ("duplicate_names.yaml", 7, "policy 'same-name'", "name",
     f"duplicate policy name (first defined at {DATA / 'duplicate_names.yaml'}:2)"),
]


def _expected_prefix(path: Path, line: int, scope: str | None, field: str | None) -> str:
    return f"{path}:{line}: " + "".join(f"{part}: " for part in (scope, field) if part)


@pytest.mark.parametrize("name, line, scope, field, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_file_gives_one_precise_line(name, line, scope, field, message):
    path = DATA / name
    [error] = validate_files([path])
    assert error.startswith(_expected_prefix(path, line, scope, field)), error
    assert message in error


@pytest.mark.parametrize("name", [b[0] for b in BROKEN])
def test_load_policies_raises_usage_error_with_the_same_lines(name):
    path = DATA / name
    with pytest.raises(UsageError) as caught:
        load_policies(packs=[], files=[path])
    assert str(caught.value).splitlines() == validate_files([path])


def test_every_problem_in_a_file_is_reported_in_one_pass():
    path = DATA / "nested_errors.yaml"
    errors = validate_files([path])
    assert [e.split(": policy 'nested': ", 1)[0] for e in errors] == [
        f"{path}:{n}" for n in (4, 9, 10, 12, 13)]
    assert [e.split(": policy 'nested': ", 1)[1] for e in errors] == [
        "severity: Input should be 'info', 'low', 'medium', 'high' or 'critical' (got 'urgent')",
        "filters[0].or[1].and[0].tiers[0]: Input should be 'hot', 'cool', 'cold' or 'archive' (got 'tepid')",
        "filters[0].or[1].and[1].type: filter 'spans-tiers' applies to group resources, not object",
        "actions[0].type: action 'delete-redundant' applies to group resources, not object",
        "actions[1].to: Field required",
    ]


def write(tmp_path: Path, text: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("flt, field, message", [
    ("{key: exif.gps, op: present, value: yes}", "filters[0]", "op 'present' takes no value"),
    ("{key: format, op: eq}", "filters[0]", "op 'eq' needs a value"),
    ("{key: format, op: in, value: JPEG}", "filters[0]", "op 'in' needs a list value (got 'JPEG')"),
    ("{key: uri, op: regex, value: '(unclosed'}", "filters[0]", "invalid regex '(unclosed'"),
    ("{key: size, op: glob, value: '1*', value_type: size}", "filters[0]",
     "value_type applies to ops eq, ne, gt, gte, lt, lte (got 'glob')"),
    ("{key: size, op: gt, value: 10 parsecs, value_type: size}", "filters[0]", "10 parsecs"),
    ("{key: modified, op: gt, value: 3 months, value_type: age}", "filters[0]", "is not an age such as 90d"),
    ("{key: modified, op: gt, value: 90d, value_type: weight}", "filters[0].value_type",
     "Input should be 'size' or 'age' (got 'weight')"),
    ("{key: sise, op: gt, value: 10}", "filters[0].key", "object records have no key 'sise'; valid keys:"),
    ("{type: size}", "filters[0]", "give gte, lte or both"),
    ("{type: tier, tiers: [hot], colour: red}", "filters[0].colour", "unknown key; valid keys: tiers, type"),
    ("{not: []}", "filters[0].not", "needs a non-empty list of filters"),
    ("{or: [spans-tiers], type: tier}", "filters[0]", "'or' must be the only key of its filter"),
    ("{op: eq, value: 3}", "filters[0].type", "a filter needs a type; valid choices: age, bucket"),
    ("42", "filters[0]", "a filter is a mapping with a type, or a bare name (got 42)"),
])
def test_value_and_element_errors(tmp_path, flt, field, message):
    path = write(tmp_path, f"""\
        policies:
          - name: one
            resource: object
            filters:
              - {flt}
        """)
    [error] = validate_files([path])
    assert error.startswith(f"{path}:5: policy 'one': {field}: "), error
    assert message in error


def test_top_level_errors(tmp_path):
    assert validate_files([write(tmp_path, "policy: []\n")]) == [
        f"{tmp_path / 'p.yaml'}:1: policies: Field required",
        f"{tmp_path / 'p.yaml'}:1: policy: unknown key (did you mean 'policies'?); valid keys: description, policies",
    ]
    [error] = validate_files([write(tmp_path, "- just a list\n", "list.yaml")])
    assert error.startswith(f"{tmp_path / 'list.yaml'}:1: Input should be a valid dictionary")
    [error] = validate_files([write(tmp_path, "policies: [hello]\n", "scalar.yaml")])
    assert error.startswith(f"{tmp_path / 'scalar.yaml'}:1: policy #1: Input should be a valid dictionary")
    [error] = validate_files([tmp_path / "missing.yaml"])
    assert error.startswith(f"{tmp_path / 'missing.yaml'}: cannot read")


def test_policy_names_must_be_unique_across_files(tmp_path):
    a = write(tmp_path, "policies: [{name: twice, resource: object}]\n", "a.yaml")
    b = write(tmp_path, "policies:\n  - name: twice\n    resource: group\n", "b.yaml")
    assert validate_files([a, b]) == [
        f"{b}:2: policy 'twice': name: duplicate policy name (first defined at {a}:1)"]
    clash = write(tmp_path, "policies: [{name: near-duplicate-review, resource: group}]\n", "clash.yaml")
    with pytest.raises(UsageError, match=r"near-duplicate-review.*duplicate policy name"):
        load_policies(files=[clash])


def test_valid_file_and_shorthands(tmp_path):
    path = write(tmp_path, """\
        policies:
          - name: shorthands
            resource: group
            filters:
              - spans-tiers
              - {key: kind, value: exact}
            actions: [delete-redundant, {type: transition, to: cold}]
          - name: defaults
            resource: object
        """)
    assert validate_files([path]) == []
    shorthands, defaults = load_policies(packs=[], files=[path])
    assert [type(f).__name__ for f in shorthands.filters] == ["SpansTiers", "ValueFilter"]
    assert [a.type for a in shorthands.actions] == ["delete-redundant", "transition"]
    assert defaults.severity.value == "medium" and [a.type for a in defaults.actions] == ["report"]


# ------------------------------------------------------------------------------------------ packs


def test_builtin_packs():
    assert "builtin" in builtin_pack_names()
    assert validate_files(sorted((Path(policies.__file__).parent / "packs").glob("*.yaml"))) == []
    by_stem = load_policies(packs=["builtin"])
    assert [p.name for p in load_policies(packs=["builtin", "builtin"])] == [p.name for p in by_stem]
    assert {p.pack for p in by_stem} <= set(builtin_pack_names())
    with pytest.raises(UsageError, match=r"unknown policy pack 'hk-pdp'; valid choices: builtin"):
        load_policies(packs=["hk-pdp"])


def test_describe_policies_rows():
    rows = {r["name"]: r for r in describe_policies(load_policies())}
    row = rows["images-with-gps-or-serials"]
    assert row["pack"] == "hk-pdpo" and row["resource"] == "object" and row["severity"] == "medium"
    assert row["filters"] == "personal data (gps, serial)"
    assert row["actions"] == ["strip-metadata (gps, serial)"]
    assert row["description"].startswith("Images whose metadata")
    assert re.search(r"hk-pdpo\.yaml:\d+$", row["source"])
    assert rows["near-duplicate-review"]["severity"] == "info"


# ------------------------------------------------------------------------------------- JSON schema


def test_policy_schema_covers_every_registered_element():
    schema = policy_schema()
    names = set()
    for branch in schema["$defs"]["filter"]["anyOf"] + schema["$defs"]["action"]["anyOf"]:
        if "$ref" in branch:
            target = schema["$defs"][branch["$ref"].rsplit("/", 1)[1]]
            names.add(target["properties"].get("type", {}).get("const") or next(iter(target["properties"])))
    assert names == set(FILTERS.names()) | set(ACTIONS.names()) | set(BOOLEANS)
    bare = schema["$defs"]["filter"]["anyOf"][-1]["enum"]
    assert "spans-tiers" in bare and "tier" not in bare


def test_policy_schema_agrees_with_the_validator():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(policy_schema())
    for pack in (Path(policies.__file__).parent / "packs").glob("*.yaml"):
        assert list(validator.iter_errors(yaml.safe_load(pack.read_text()))) == []
    for name in ("bad_op.yaml", "unknown_key.yaml", "unknown_filter.yaml", "wrong_resource.yaml"):
        assert list(validator.iter_errors(yaml.safe_load((DATA / name).read_text()))), name


# -------------------------------------------------------------------------------------- meta-lint

ELEMENTS = [(name, cls) for name, cls in FILTERS] + [(name, cls) for name, cls in ACTIONS]


def _example(cls: type) -> str:
    doc = cls.__doc__ or ""
    assert "Example::" in doc, f"{cls.__name__} needs a YAML example in its docstring"
    return textwrap.dedent(doc.split("Example::", 1)[1]).strip() + "\n"


def _elements(policy: Policy) -> list[Element]:
    found: list[Element] = list(policy.actions)
    todo: list[Filter] = list(policy.filters)
    while todo:
        flt = todo.pop()
        found.append(flt)
        todo.extend(getattr(flt, "filters", ()))
    return found


@pytest.mark.parametrize("name, cls", ELEMENTS + list(BOOLEANS.items()),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_meta_lint_element(tmp_path, name, cls):
    schema = policy_schema()["$defs"][cls.__name__]
    assert schema["additionalProperties"] is False, f"{name} must forbid unknown keys"
    if name in BOOLEANS:
        assert list(schema["properties"]) == [name]
    else:
        assert schema["properties"]["type"]["const"] == name
    path = write(tmp_path, _example(cls))
    assert validate_files([path]) == []
    used = [e for p in load_policies(packs=[], files=[path]) for e in _elements(p)]
    assert any(type(e) is cls for e in used), f"the example of {name} does not use it"


def test_registry_checks_names():
    registry: Registry[Element] = Registry("widget")

    class Good(Element):
        type: Literal["good"]

    registry.register("good")(Good)
    assert registry.names() == ["good"] and "good" in registry and registry.get("good") is Good
    with pytest.raises(ValueError, match="already registered"):
        registry.register("good")(Good)
    with pytest.raises(TypeError, match=r"must declare `type: Literal\['other'\]`"):
        registry.register("other")(Good)


@pytest.mark.parametrize("module", [f"tierscan.policies{sub}" for sub in (
    "", ".model", ".filters", ".actions", ".engine", ".validate", ".schema", ".registry", ".costs", ".output")])
def test_exported_names(module):
    mod: Any = __import__(module, fromlist=["__all__"])
    assert all(hasattr(mod, name) for name in mod.__all__)
    assert len(set(mod.__all__)) == len(mod.__all__)
    if module == "tierscan.policies":  # what the pipeline and the CLI call
        assert {"PolicySet", "builtin_pack_names", "describe_policies", "evaluate", "load_policies",
                "policy_schema", "validate_files"} <= set(mod.__all__)
