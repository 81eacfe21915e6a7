"""A reviewer's decisions about duplicate groups: the file the HTML report's page downloads, and that
`tierscan near ignore --decisions` and `tierscan apply --decisions` read back (docs/decisions.md).

Each group the reviewer looked at is one entry: its id, kind and centre (master), the files marked "keep",
and, for a near group, the members marked "not a duplicate" of the centre. The file is input from a
browser, so it is validated here, whole, before anything acts on it: size, shape, lengths and counts are
bounded, unknown fields are refused, and an error names where the file is wrong without echoing its
content.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.safe_yaml import read_bounded

__all__ = ["DECISIONS_FORMAT", "MAX_DECISIONS_BYTES", "Decisions", "GroupDecision", "load_decisions"]

DECISIONS_FORMAT = "tierscan-decisions"
MAX_DECISIONS_BYTES = 64 << 20
_MAX_URIS = 100_000  # files named in one group's entry
_MAX_GROUPS = 1_000_000

_Uri = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GroupDecision(_Strict):
    """What the reviewer decided about one group (an entry means the group was reviewed)."""

    id: Annotated[str, StringConstraints(pattern=r"^[en]-[0-9a-f]{1,64}$")]
    kind: Literal["exact", "near"]
    centre: _Uri  # the group's master as the report showed it
    keep: list[_Uri] = Field(default_factory=list, max_length=_MAX_URIS)  # files to leave alone
    # Near members that do not show the centre's picture: recorded as "not duplicates" of the centre.
    not_duplicate: list[_Uri] = Field(default_factory=list, max_length=_MAX_URIS)

    @model_validator(mode="after")
    def _consistent(self) -> GroupDecision:
        if self.id[0] != self.kind[0]:  # e-... exact, n-... near
            raise ValueError(f"group {self.id}: kind {self.kind} does not match its id")
        if self.not_duplicate and self.kind == "exact":
            raise ValueError(f"group {self.id}: byte-identical copies cannot be 'not a duplicate'")
        if self.centre in self.not_duplicate:
            raise ValueError(f"group {self.id}: the centre cannot be 'not a duplicate' of itself")
        return self


class Decisions(_Strict):
    """The whole file."""

    format: Literal["tierscan-decisions"]
    version: Literal[1]
    report: Annotated[str, StringConstraints(max_length=64)] | None = None  # the report's generated_at
    groups: list[GroupDecision] = Field(max_length=_MAX_GROUPS)

    @model_validator(mode="after")
    def _unique(self) -> Decisions:
        ids = [g.id for g in self.groups]
        if len(set(ids)) != len(ids):
            raise ValueError("a group appears twice")
        return self

    def pairs(self) -> list[tuple[str, str]]:
        """(centre, member) for every member marked "not a duplicate"."""
        return [(g.centre, uri) for g in self.groups for uri in g.not_duplicate]

    def uris(self) -> set[str]:
        """Every file the decisions name."""
        return {uri for g in self.groups for uri in (g.centre, *g.keep, *g.not_duplicate)}


def load_decisions(path: Path) -> Decisions:
    """The decisions in `path`; UsageError (exit status 2) for a file that is missing, too large, not
    JSON or not decisions, saying where, never what it holds."""
    data = read_bounded(path, MAX_DECISIONS_BYTES, "decisions files")
    try:
        return Decisions.model_validate_json(data)
    except ValidationError as exc:
        problems = [f"{'.'.join(str(p) for p in e['loc']) or 'file'}: {e['msg']}" for e in exc.errors()[:3]]
        more = f" (and {exc.error_count() - 3} more)" if exc.error_count() > 3 else ""
        raise UsageError(f"{path}: not a tierscan decisions file (format {DECISIONS_FORMAT!r}, version 1): "
                         + "; ".join(problems) + more) from None
