"""The generic filters: the value filter with its one operator table, and `and`/`or`/`not`.

Every filter is a frozen pydantic model (`FILTERS` registers the named ones), so its schema is both the
validator and the JSON schema editors get. Each class docstring ends with a YAML example that the
meta-lint test validates, so the examples cannot rot. tierscan's own filters are in `domain.py`.
"""

from __future__ import annotations

import fnmatch
import functools
import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, Self

import re2  # type: ignore[import-untyped]
from pydantic import (
    ByteSize,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    model_validator,
)

from tierscan.policies.model import FILTERS, RECORD_KEYS, Context, Filter, Issue, Record, Resource, resolve
from tierscan.policies.prefilter import Condition, OneOf, every, some

__all__ = [
    "BOOLEANS",
    "OPERATORS",
    "VALUE_TYPES",
    "And",
    "Not",
    "Or",
    "Size",
    "ValueFilter",
    "parse_age",
    "parse_size",
    "parse_timestamp",
]

# ---------------------------------------------------------------------------------------------- units

_BYTES = TypeAdapter(ByteSize)
_AGE = re.compile(r"^\s*(\d+)\s*([hdw]?)\s*$")
_AGE_UNITS = {"h": timedelta(hours=1), "d": timedelta(days=1), "w": timedelta(weeks=1), "": timedelta(days=1)}

# Sizes in policy files: a byte count or a string such as `10MB` (decimal) or `10MiB` (binary).
Size = Annotated[
    ByteSize,
    WithJsonSchema({"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "examples": ["10MB"]}]}),
]


def parse_size(value: Any) -> int:
    """Bytes from `10MB`, `1.5GiB` or an int (pydantic's ByteSize rules); ValueError otherwise."""
    try:
        return int(_BYTES.validate_python(value))
    except ValidationError as exc:
        raise ValueError(f"{value!r} is not a size such as 10MB or 1GiB") from exc


def parse_age(value: Any) -> timedelta:
    """A duration from `90d`, `12h`, `2w` or a bare number of days; ValueError otherwise."""
    match = _AGE.match(str(value)) if isinstance(value, (int, str)) and not isinstance(value, bool) else None
    if match is None:
        raise ValueError(f"{value!r} is not an age such as 90d, 12h or 2w")
    return int(match[1]) * _AGE_UNITS[match[2]]


def parse_timestamp(value: Any) -> datetime:
    """A record timestamp (ISO text from `model_dump(mode="json")`, or a datetime); naive means UTC."""
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when if when.tzinfo else when.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------------- value filter


def _present(value: Any) -> bool:
    """Present means there is something: None, "", [] and {} all count as absent."""
    return value is not None and value != "" and value != [] and value != {}


def _contains(actual: Any, expected: Any) -> bool:
    return isinstance(actual, (str, list, tuple, dict)) and expected in actual


def _glob(actual: Any, pattern: Any) -> bool:
    return isinstance(actual, str) and fnmatch.fnmatchcase(actual, pattern)


_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # a bad pattern is reported by `compile_regex`'s error, not on stderr


@functools.cache
def compile_regex(pattern: str) -> Any:
    """A policy's regex, compiled by RE2: matching takes time linear in the value, whatever the pattern
    (Python's `re` backtracks, so `^(a+)+$` on a long key would stall a scan). RE2 has no backreferences
    or lookarounds; ValueError names what it cannot compile."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid regex {pattern!r}: {reason} (regexes use RE2 syntax, which has no"
                         " backreferences or lookarounds)") from exc


def _regex(actual: Any, pattern: Any) -> bool:
    # Searches anywhere; anchor with ^ and $ for a whole-value match.
    return isinstance(actual, str) and compile_regex(pattern).search(actual) is not None


# The one table of value operators: name -> predicate(actual record value, expected policy value).
# A TypeError (comparing None or mixed types) means no match, never a crash.
OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
    "in": lambda actual, expected: actual in expected,
    "not-in": lambda actual, expected: actual not in expected,
    "contains": _contains,
    "glob": _glob,
    "regex": _regex,
    "present": lambda actual, _: _present(actual),
    "absent": lambda actual, _: not _present(actual),
}
_ORDERED = ("eq", "ne", "gt", "gte", "lt", "lte")  # the operators a value_type converts for
_NO_VALUE = ("present", "absent")
_LIST_VALUE = ("in", "not-in")
_TEXT_VALUE = ("glob", "regex")
_NEGATIVE = ("ne", "not-in", "absent")  # they only exclude: no part of a finding's reason
_OPERATOR_WORDS = {"eq": "is", "ne": "is not", "gt": "is over", "gte": "is at least", "lt": "is under",
                   "lte": "is at most", "contains": "contains", "glob": "matches", "regex": "matches the pattern"}


@dataclass(frozen=True)
class ValueType:
    """How `value_type` converts both sides before comparing: the record's value and the policy's."""

    actual: Callable[[Any, Context], Any]
    expected: Callable[[Any], Any]


VALUE_TYPES: dict[str, ValueType] = {
    # `size: {op: gte, value: 10MB}` compares byte counts.
    "size": ValueType(lambda actual, ctx: parse_size(actual), parse_size),
    # The record's timestamp becomes its age at evaluation time: `op: gt, value: 90d` is "older than 90 days".
    "age": ValueType(lambda actual, ctx: ctx.now - parse_timestamp(actual), parse_age),
}

# The choices a policy may write, derived from the tables so that they cannot drift apart. (A type checker
# sees these as plain strings; pydantic validates them.)
Operator: Any = Literal[tuple(OPERATORS)]
ValueTypeName: Any = Literal[tuple(VALUE_TYPES)]


@FILTERS.register("value")
class ValueFilter(Filter):
    """Compare the value at a dotted `key` of the record with `value` using `op`.

    `type: value` may be left out: any filter with a `key` is a value filter. On a group, keys address the
    group record (`kind`, `master`, `members.0.tier`). `value_type: size` reads `10MB`-style sizes;
    `value_type: age` turns a timestamp into its age, so `op: gt, value: 90d` means older than 90 days.

    Example::

        policies:
          - name: large-old-tiffs
            resource: object
            filters:
              - {key: format, op: in, value: [TIFF, HEIC]}
              - {key: size, op: gte, value: 50MB, value_type: size}
              - {type: value, key: modified, op: gt, value: 365d, value_type: age}
    """

    type: Literal["value"] = "value"
    key: str = Field(min_length=1)
    op: Operator = "eq"
    value: Any = None
    value_type: ValueTypeName | None = None
    _expected: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Catch the combinations that would silently never match."""
        if self.op in _NO_VALUE:
            if "value" in self.model_fields_set:
                raise ValueError(f"op {self.op!r} takes no value")
        elif "value" not in self.model_fields_set:
            raise ValueError(f"op {self.op!r} needs a value")
        if self.op in _LIST_VALUE and not isinstance(self.value, list):
            raise ValueError(f"op {self.op!r} needs a list value (got {self.value!r})")
        if self.op in _TEXT_VALUE and not isinstance(self.value, str):
            raise ValueError(f"op {self.op!r} needs a text pattern (got {self.value!r})")
        if self.op == "regex":
            compile_regex(self.value)
        expected = self.value
        if self.value_type is not None:
            if self.op not in _ORDERED:
                raise ValueError(f"value_type applies to ops {', '.join(_ORDERED)} (got {self.op!r})")
            expected = VALUE_TYPES[self.value_type].expected(self.value)
        self._expected = expected
        return self

    def check(self, resource: Resource) -> list[Issue]:
        issues = super().check(resource)
        first = self.key.split(".")[0]
        if first not in RECORD_KEYS[resource]:
            valid = ", ".join(sorted(RECORD_KEYS[resource]))
            issues.append((("key",), f"{resource} records have no key {first!r}; valid keys: {valid}"))
        return issues

    def __call__(self, record: Record, ctx: Context) -> bool:
        return self.compiled()(record, ctx)

    def compiled(self) -> Callable[[Record, Context], bool]:
        key, compare, expected = self.key, OPERATORS[self.op], self._expected
        convert = VALUE_TYPES[self.value_type].actual if self.value_type is not None else None

        def test(record: Record, ctx: Context) -> bool:
            actual = resolve(record, key)
            try:
                if convert is not None:
                    actual = convert(actual, ctx)
                return compare(actual, expected)
            except (TypeError, ValueError):
                return False

        return test

    def necessary(self) -> Condition | None:
        """Equality and membership of text at a top-level key (the stored field's own value)."""
        if self.value_type is not None or "." in self.key:
            return None
        values = self.value if self.op in _LIST_VALUE else [self.value]
        if self.op not in ("eq", "ne", *_LIST_VALUE) or not all(isinstance(v, str) for v in values):
            return None
        return OneOf(self.key, frozenset(values), negated=self.op in ("ne", "not-in"))

    def summary(self) -> str:
        subject = f"age of {self.key}" if self.value_type == "age" else self.key
        if self.op in _NO_VALUE:
            return f"{subject} is {'set' if self.op == 'present' else 'not set'}"
        if self.op in _LIST_VALUE:
            values = [str(v) for v in self.value]
            listed = " or ".join(values) if len(values) < 3 else ", ".join(values[:-1]) + " or " + values[-1]
            return f"{subject} is {'' if self.op == 'in' else 'not '}{listed}"
        return f"{subject} {_OPERATOR_WORDS[self.op]} {self.value}"

    def reason(self, record: Record, ctx: Context) -> str:
        """The summary; for a pattern or a list, the value that matched it (a skip reason, not a regex)."""
        if self.op in _NEGATIVE:
            return ""
        if self.op in ("in", "contains", *_TEXT_VALUE) and self.value_type is None:
            return f"{self.key} is {resolve(record, self.key)}"
        return self.summary()


# ------------------------------------------------------------------------------------------ boolean

# Nested filter lists point at the union of all filters, which exists only in `policy_schema()` (so a
# boolean filter's own `model_json_schema()` cannot resolve it; use the generated schema).
_NESTED = WithJsonSchema({"type": "array", "items": {"$ref": "#/$defs/filter"}, "minItems": 1})


class _Boolean(Filter):
    """`{and|or|not: [filters]}`: built by `validate.py` from the one key, not registered by `type:`."""

    filters: tuple[Filter, ...]

    def _joined(self, word: str) -> str:
        return "(" + f" {word} ".join(f.summary() for f in self.filters) + ")"


class And(_Boolean):
    """All nested filters hold (the same as listing them under `filters:`; useful inside `or`/`not`).

    Example::

        policies:
          - name: exact-hot-duplicates
            resource: group
            filters:
              - or:
                  - and: [{type: group-kind, kind: exact}, {type: tier, tiers: [hot]}]
                  - {type: group-kind, kind: near}
    """

    filters: Annotated[tuple[Filter, ...], _NESTED] = Field(alias="and", min_length=1)

    def __call__(self, record: Record, ctx: Context) -> bool:
        return all(f(record, ctx) for f in self.filters)

    def compiled(self) -> Callable[[Record, Context], bool]:
        tests = tuple(f.compiled() for f in self.filters)
        return lambda record, ctx: all(t(record, ctx) for t in tests)

    def necessary(self) -> Condition | None:
        return every(f.necessary() for f in self.filters)

    def summary(self) -> str:
        return self._joined("and")

    def reason(self, record: Record, ctx: Context) -> str:
        return "; ".join(f.reason(record, ctx) for f in self.filters)


class Or(_Boolean):
    """At least one nested filter holds; the reason names those that did.

    Example::

        policies:
          - name: located-or-serialled
            resource: object
            filters:
              - or: [{key: exif.gps, op: present}, {key: exif.serials, op: present}]
    """

    filters: Annotated[tuple[Filter, ...], _NESTED] = Field(alias="or", min_length=1)

    def __call__(self, record: Record, ctx: Context) -> bool:
        return any(f(record, ctx) for f in self.filters)

    def compiled(self) -> Callable[[Record, Context], bool]:
        tests = tuple(f.compiled() for f in self.filters)
        return lambda record, ctx: any(t(record, ctx) for t in tests)

    def necessary(self) -> Condition | None:
        return some(f.necessary() for f in self.filters)

    def summary(self) -> str:
        return self._joined("or")

    def reason(self, record: Record, ctx: Context) -> str:
        return "; ".join(f.reason(record, ctx) for f in self.filters if f(record, ctx))


class Not(_Boolean):
    """The nested filters do not all hold (`not: [a, b]` is `not (a and b)`, as in Cloud Custodian).

    Example::

        policies:
          - name: outside-archive
            resource: object
            filters:
              - not: [{type: tier, tiers: [archive]}]
    """

    filters: Annotated[tuple[Filter, ...], _NESTED] = Field(alias="not", min_length=1)

    def __call__(self, record: Record, ctx: Context) -> bool:
        return not all(f(record, ctx) for f in self.filters)

    def compiled(self) -> Callable[[Record, Context], bool]:
        tests = tuple(f.compiled() for f in self.filters)
        return lambda record, ctx: not all(t(record, ctx) for t in tests)

    def summary(self) -> str:
        return "not " + self._joined("and")

    def reason(self, record: Record, ctx: Context) -> str:
        return ""  # it only excludes


BOOLEANS: dict[str, type[_Boolean]] = {"and": And, "or": Or, "not": Not}
