"""Load and check policy files: build registered elements, and report every problem at once.

Each problem is one line, `file:LINE: policy 'NAME': filters[0].op: message (got 'bad value')`, so a
user can fix a whole file in one pass. Filters and actions are built one by one through their registries
(the factory step of Cloud Custodian), which lets an unknown `type:` list the valid choices and keeps
each error scoped to its own element rather than to a union of every possible element.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from tierscan.policies import domain  # noqa: F401  (importing registers the domain filters)
from tierscan.policies.actions import Report
from tierscan.policies.filters import BOOLEANS
from tierscan.policies.model import (
    ACTIONS,
    FILTERS,
    RESOURCES,
    Element,
    Filter,
    Loc,
    Policy,
    PolicyFile,
    PolicySet,
    PolicySpec,
    Resource,
)
from tierscan.policies.registry import Registry
from tierscan.policies.source import PolicyYaml, line_at, parse_policy_yaml, read_policy_text, read_policy_yaml
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.errors import UsageError

__all__ = [
    "BUILTIN",
    "PACKS_DIR",
    "PolicySource",
    "builtin_pack_names",
    "configured_policies",
    "describe_packs",
    "describe_policies",
    "load_policies",
    "load_policy_sources",
    "policy_sources",
    "validate_files",
]

PACKS_DIR = Path(__file__).parent / "packs"
# `builtin` is every pack shipped in PACKS_DIR: adding a pack is adding a YAML file there.
BUILTIN = "builtin"

E = TypeVar("E", bound=Element)

# A policy file as a scan stores it, to evaluate the same policies later: (pack, file, text), where file is
# None for a built-in pack (found by its pack name wherever tierscan is installed).
PolicySource = tuple[str, str | None, str]


def builtin_pack_names() -> list[str]:
    """Names usable in `packs:`: `builtin` (all of them) and each shipped pack by file stem."""
    return sorted({p.stem for p in PACKS_DIR.glob("*.yaml")} | {BUILTIN})


def load_policies(*, packs: Iterable[str] = (BUILTIN,), files: Iterable[Path | str] = ()) -> PolicySet:
    """The policies of the named built-in packs and of extra files, validated.

    Raises UsageError listing every problem, one per line, each naming file, line, policy and field.
    """
    sources, errors = _resolve(packs, files)
    policies, problems = _load(sources)
    if errors or problems:
        raise UsageError("\n".join(errors + problems))
    return PolicySet(tuple(policies))


def _resolve(packs: Iterable[str], files: Iterable[Path | str]) -> tuple[list[tuple[Path, str]], list[str]]:
    """The (path, pack) pairs the named packs and files stand for, each once, and an error per unknown pack."""
    sources: list[tuple[Path, str]] = []
    errors: list[str] = []
    for name in packs:
        if name == BUILTIN:
            sources += [(p, p.stem) for p in sorted(PACKS_DIR.glob("*.yaml"))]
        elif (PACKS_DIR / f"{name}.yaml").is_file():
            sources.append((PACKS_DIR / f"{name}.yaml", name))
        else:
            errors.append(f"unknown policy pack {name!r}; valid choices: {', '.join(builtin_pack_names())}")
    sources += [(Path(f), str(f)) for f in files]
    return list(dict.fromkeys(sources)), errors


def policy_sources(*, packs: Iterable[str] = (BUILTIN,), files: Iterable[Path | str] = ()) -> list[PolicySource]:
    """The texts `load_policies` would read, built-in packs' included, for a scan to store: a later command
    evaluates the same policies even when the files have moved or changed (`load_policy_sources`)."""
    sources, errors = _resolve(packs, files)
    if errors:
        raise UsageError("\n".join(errors))
    return [(pack, None if path == PACKS_DIR / f"{pack}.yaml" else str(path), read_policy_text(path))
            for path, pack in sources]


def load_policy_sources(sources: Iterable[PolicySource]) -> PolicySet:
    """The policies of stored sources (`policy_sources`), validated like files; a built-in pack is named by
    its path in this installation."""
    texts = {(PACKS_DIR / f"{pack}.yaml" if file is None else Path(file), pack): text
             for pack, file, text in sources}
    policies, problems = _load(list(texts), texts)
    if problems:
        raise UsageError("\n".join(problems))
    return PolicySet(tuple(policies))


def configured_policies(config: Config) -> PolicySet:
    """The policies `config` selects: those its scan stored, for a config read back from a catalog
    (`Config.embedded`); else its packs and files."""
    if config.embedded is not None:
        return load_policy_sources(config.embedded.policies)
    return load_policies(packs=config.policies.packs, files=config.policies.files)


def validate_files(paths: Iterable[Path | str]) -> list[str]:
    """Error lines for policy files checked together (names must be unique across them); empty if valid."""
    return _load([(Path(p), str(p)) for p in paths])[1]


def describe_packs(selected: Iterable[str] = (BUILTIN,)) -> list[dict[str, Any]]:
    """One row per shipped pack for `tierscan policy list`: name, description, its policies, and whether
    the `selected` pack names (the config's `tierscan.policies.packs`) include it."""
    chosen = set(selected)
    rows = []
    for path in sorted(PACKS_DIR.glob("*.yaml")):
        data = read_policy_yaml(path).data
        rows.append({
            "name": path.stem,
            "selected": BUILTIN in chosen or path.stem in chosen,
            "description": str(data.get("description", "")).strip(),
            "policies": [p.name for p in load_policies(packs=[path.stem])],
        })
    return rows


def describe_policies(policy_set: PolicySet) -> list[dict[str, Any]]:
    """One row per policy for `tierscan policy list`."""
    return [
        {
            "name": p.name,
            "pack": p.pack,
            "resource": p.resource,
            "severity": p.severity.value,
            "description": p.description,
            "filters": "; ".join(f.summary() for f in p.filters) or "(every record)",
            "actions": [a.summary() for a in p.actions],
            "source": p.source,
        }
        for p in policy_set
    ]


def _load(sources: list[tuple[Path, str]], texts: Mapping[tuple[Path, str], str] | None = None
          ) -> tuple[list[Policy], list[str]]:
    """Policies from (path, pack) pairs, and the error lines, including names defined twice. `texts`: the
    sources' texts, instead of reading the files."""
    policies: list[Policy] = []
    errors: list[str] = []
    first: dict[str, Policy] = {}
    for path, pack in sources:
        loaded, problems = _load_file(path, pack, None if texts is None else texts[path, pack])
        errors += problems
        for policy in loaded:
            if policy.name in first:
                errors.append(f"{policy.source}: policy {policy.name!r}: name: duplicate policy name"
                              f" (first defined at {first[policy.name].source})")
            else:
                first[policy.name] = policy
                policies.append(policy)
    return policies, errors


def _load_file(path: Path, pack: str, text: str | None = None) -> tuple[list[Policy], list[str]]:
    try:
        source = read_policy_yaml(path) if text is None else parse_policy_yaml(text, path)
    except UsageError as exc:
        return [], str(exc).splitlines()
    problems = _Problems(path, source)
    try:
        problems.policies = PolicyFile.model_validate(source.data).policies
    except ValidationError as exc:
        problems.add_pydantic(exc, PolicyFile, ())
        return [], problems.lines
    policies = []
    for index, raw in enumerate(problems.policies):
        where = f"{path}:{line_at(source.node, ('policies', index, 'name')) or 1}"
        policy = _build_policy(raw, ("policies", index), pack, where, problems)
        if policy is not None:
            policies.append(policy)
    return policies, problems.lines


def _build_policy(raw: Any, loc: Loc, pack: str, source: str, problems: _Problems) -> Policy | None:
    """The policy, or None after reporting everything wrong with it: the spec and each element."""
    before = len(problems.lines)
    try:
        spec: PolicySpec | None = PolicySpec.model_validate(raw)
    except ValidationError as exc:
        spec = None
        problems.add_pydantic(exc, PolicySpec, loc)
    if not isinstance(raw, Mapping):
        return None
    # Elements are built even when the spec failed, so one pass reports every problem in the policy.
    resource = raw.get("resource") if raw.get("resource") in RESOURCES else None
    filters = [
        _build_filter(item, (*loc, "filters", i), resource, problems)
        for i, item in enumerate(_as_list(raw.get("filters")))
    ]
    actions = [
        _build(ACTIONS, item, (*loc, "actions", i), resource, problems)
        for i, item in enumerate(_as_list(raw.get("actions")))
    ]
    if spec is None or len(problems.lines) > before:
        return None
    return Policy(
        name=spec.name,
        description=spec.description.strip(),
        resource=spec.resource,
        severity=spec.severity,
        filters=tuple(f for f in filters if f is not None),
        actions=tuple(a for a in actions if a is not None) or (Report(type="report"),),
        pack=pack,
        source=source,
    )


def _as_list(value: Any) -> list[Any]:
    """A raw element list; anything else was already reported by the spec."""
    return value if isinstance(value, list) else []


def _build_filter(data: Any, loc: Loc, resource: Resource | None, problems: _Problems) -> Filter | None:
    """A filter from its YAML: `{and|or|not: [...]}`, a registered `type:`, or a value filter's `key:`."""
    if isinstance(data, Mapping):
        bools = [k for k in BOOLEANS if k in data]
        if bools:
            word = bools[0]
            if len(data) != 1:
                keys = ", ".join(map(str, data))
                problems.add(loc, f"{word!r} must be the only key of its filter (got {keys})")
                return None
            children = data[word]
            if not isinstance(children, list) or not children:
                problems.add((*loc, word), f"needs a non-empty list of filters (got {children!r})")
                return None
            built = [_build_filter(c, (*loc, word, i), resource, problems) for i, c in enumerate(children)]
            if any(b is None for b in built):
                return None
            return BOOLEANS[word].model_validate({word: built})
        if "type" not in data and "key" in data:
            data = {"type": "value", **data}
    return _build(FILTERS, data, loc, resource, problems)


def _build(
    registry: Registry[E], data: Any, loc: Loc, resource: Resource | None, problems: _Problems
) -> E | None:
    """One registered element from `{type: name, ...}` or the bare name, checked against the resource."""
    if isinstance(data, str):
        data = {"type": data}
    if not isinstance(data, Mapping):
        problems.add(loc, f"a {registry.kind} is a mapping with a type, or a bare name (got {data!r})")
        return None
    name = data.get("type")
    cls = registry.get(name) if isinstance(name, str) else None
    if cls is None:
        problems.add((*loc, "type"), _unknown_type(registry, name))
        return None
    try:
        element = cls.model_validate(data)
    except ValidationError as exc:
        problems.add_pydantic(exc, cls, loc)
        return None
    for where, message in element.check(resource) if resource else []:
        problems.add(loc + where, message)
    return element


def _unknown_type(registry: Registry[E], name: Any) -> str:
    choices = registry.names() + (list(BOOLEANS) if registry is FILTERS else [])
    if name is None:
        return f"a {registry.kind} needs a type; valid choices: {', '.join(choices)}"
    hint = _did_you_mean(str(name), choices)
    return f"unknown {registry.kind} type {name!r}{hint}; valid choices: {', '.join(choices)}"


def _did_you_mean(word: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(word, choices, n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class _Problems:
    """The error lines of one file, each formatted as it is found (file, line, policy, field)."""

    def __init__(self, path: Path, source: PolicyYaml) -> None:
        self.path = path
        self.node = source.node
        self.policies: list[Any] = []  # the raw entries, to name a policy in its errors
        self.lines: list[str] = []

    def add(self, loc: Loc, message: str) -> None:
        where = f"{self.path}:{line_at(self.node, loc) or 1}"  # a missing top-level key: the file's start
        scope = ""
        if len(loc) >= 2 and loc[0] == "policies" and isinstance(loc[1], int):
            scope = f"{self._policy_name(loc[1])}: "
            loc = loc[2:]
        field = _field(loc)
        self.lines.append(f"{where}: {scope}{field}: {message}" if field else f"{where}: {scope}{message}")

    def add_pydantic(self, exc: ValidationError, model: type[BaseModel], loc: Loc) -> None:
        for error in exc.errors():
            self.add(loc + tuple(error["loc"]), _message(error, model))

    def _policy_name(self, index: int) -> str:
        raw = self.policies[index] if index < len(self.policies) else None
        name = raw.get("name") if isinstance(raw, Mapping) else None
        return f"policy {name!r}" if isinstance(name, str) else f"policy #{index + 1}"


def _field(loc: Loc) -> str:
    """`filters[0].and[1].op` from ("filters", 0, "and", 1, "op")."""
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    """pydantic's message, made to quote the bad value and list valid keys, as Custodian's errors do."""
    kind = error["type"]
    if kind == "extra_forbidden" and len(error["loc"]) == 1:
        keys = sorted(f.alias or n for n, f in model.model_fields.items())
        return f"unknown key{_did_you_mean(str(error['loc'][0]), keys)}; valid keys: {', '.join(keys)}"
    message = str(error.get("ctx", {}).get("error")) if kind == "value_error" else error["msg"]
    value = error.get("input")
    if kind not in ("missing", "extra_forbidden") and isinstance(value, (str, int, float, bool)):
        message += f" (got {value!r})"
    return message
