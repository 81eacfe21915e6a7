"""Remediation, opt-in: `tierscan apply` and `tierscan undo`. The only code that changes scanned buckets.

Three steps, each a separate command, so that nothing changes by accident:

1. **Plan** (`tierscan apply --db DB --action ACTION [--to ...] --plan PLAN.json`): the objects in scope,
   minus every group master, each with the identity the scan saw (size, ETag, version, modified time).
   The scope: without `--policy`, only redundant copies in exact groups that findings name; with it, what
   those policies' findings name (near-duplicate members too: naming the policy is the human review they
   need). A reviewer's decisions file (`--decisions`, from the HTML report) narrows that scope to the
   objects of the groups it reviewed, less those it marked keep or not a duplicate; it never adds one.
   An unknown policy, or an action the backend of an object in scope cannot do, is an error here,
   not a skip later. Writing a plan changes nothing. The plan carries a SHA-256 digest of what it will do.
2. **Review** (`tierscan apply --execute PLAN.json`): prints what the plan would do and its digest; still
   changes nothing.
3. **Execute** (`tierscan apply --execute PLAN.json --approve DIGEST --journal J.jsonl`): runs only the plan
   whose digest was approved (an edited plan has another digest and must be reviewed again; a refused
   approval never shows the digest, so the review cannot be skipped). For each
   object, in order: it is refused if it is a master in the catalog's groups *now*; its bucket, key and
   destination are taken from the catalog's record for its URI, and skipped if the plan says otherwise
   (the review shows the URI, so an edited bucket/key must not act elsewhere); a `delete` needs the
   object to be a redundant copy in an exact group whose master still exists unchanged; a HEAD re-checks
   the ETag/generation (local: size and modified time) against the plan; a `delete`, or a `quarantine`
   of an exact copy, needs the master proven to hold the same bytes now (below); then a journal entry,
   with the proof, is written and fsynced; only then is the object changed, and the outcome is
   journalled too.

Proof rules (`_check_master`), because the catalog's digests are input, not evidence: refused if either
the copy or the master is a symlink (or under a symlinked folder) or both are one object (device and
inode; bucket, key and version). Proven by a digest the provider computed itself that both objects carry
(`Connector.vouched`: S3 plain-MD5 ETags, not SSE-KMS/SSE-C, and full-object SHA/MD5 checksums; S3
multipart ETags and COMPOSITE checksums keyed by part layout, so only equal layouts compare; GCS md5Hash);
an unequal layout-free digest proves the master differs. Otherwise both are read and compared, streamed
(local files always, never following a symlink). CRCs, xxHash and Azure Content-MD5 (writer-set) prove
nothing. Unprovable: skipped and journalled. Deletes are conditional on the checked ETag/generation (S3
`If-Match`, GCS `ifGenerationMatch`, Azure `If-Match`); locally the file's lstat is re-checked just before
the unlink. An existing quarantine destination is reused only when proven to hold the source's bytes.

`tierscan undo J.jsonl` reverses `tag` (restores the previous tag set) and `quarantine` (moves the object
back; in an S3 versioned bucket by removing the delete marker, which restores the very version). A
`delete` in an S3 versioned bucket is undone by removing its delete marker; other deletes and transitions
are not undone. Undo steps are journalled in the same file, so undo can be run again after a crash.

Actions: `tag` (S3 object tags, GCS custom metadata, Azure blob index tags, local user xattrs), `quarantine`
(copy to `--to` then delete the source, conditional on the ETag; local files are moved), `transition`
(`--to STORAGE_CLASS`, the provider's native class name), `delete` (in a versioned bucket, a delete marker
or noncurrent version keeps the data).
"""

from __future__ import annotations

import asyncio
import difflib
import hashlib
import json
import os
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from tierscan.connectors import Connector, connector_class, parse_target
from tierscan.connectors.base import Capabilities, Location, ObjectState, Target
from tierscan.scanner.core.atomic import atomic_write, fsync_dir
from tierscan.scanner.core.config import Config
from tierscan.scanner.core.decisions import Decisions
from tierscan.scanner.core.errors import ObjectError, UsageError
from tierscan.scanner.core.models import Finding, Group, InventoryRecord, ObjectStatus
from tierscan.scanner.scan.catalog import Catalog

__all__ = ["ACTIONS", "APPROVE_MIN", "Action", "ApplyResult", "build_plan", "describe_plan", "execute_plan",
           "load_plan", "plan_digest", "review_problems", "undo_journal", "unknown_decisions", "write_plan"]


class Action(StrEnum):
    """What `tierscan apply` does to each object of a plan (a plan and its journal hold the text; members
    compare and hash as their text)."""

    tag = "tag"
    quarantine = "quarantine"
    transition = "transition"
    delete = "delete"


ACTIONS = tuple(Action)
PLAN_FORMAT = "tierscan-plan"
APPROVE_MIN = 16  # hex digits of a plan's digest that `--approve` must give (the review prints this many)
# The write each action needs (`Capabilities.writes`); quarantine needs "move", or "copy" and "delete".
_NEEDS = {Action.tag: "tag", Action.transition: "set_tier", Action.delete: "delete"}
_REMOVES = (Action.delete, Action.quarantine)  # the actions that take an object away from its location

ConnectorFactory = Callable[[str], Connector]


# ---- plan ----------------------------------------------------------------------------------------

def _scheme(uri: str) -> str:
    return uri.split("://", 1)[0] if "://" in uri else "file"


def _destination(record: InventoryRecord, to: str) -> dict[str, str]:
    """Where quarantine puts an object: `--to PREFIX` (same bucket), `--to SCHEME://BUCKET/PREFIX` (another
    bucket, source bucket name kept in the key), or, for local files, a folder (bucket/key kept below it).
    The object's connector names the place (`Connector.location`); a folder is resolved now, and kept as
    `root`, so that the plan names the same place from any working directory."""
    scheme = _scheme(record.uri)
    target = parse_target(to)
    if target.scheme == scheme:  # a place of the object's own kind: its bucket's name kept in the key
        relative = f"{record.bucket.split('/')[-1]}/{record.key}"
    elif "://" not in to:  # a prefix in the object's own bucket
        if not to.strip("/"):
            raise UsageError("--to: name a quarantine prefix or bucket URI")
        target, relative = Target(scheme, record.bucket, to.strip("/")), record.key
    else:
        raise UsageError(f"--to {to}: a {scheme}:// object is quarantined within {scheme}://")
    loc = connector_class(scheme).location(target, relative)
    if loc.uri == record.uri:
        raise ValueError("the destination is the object itself")
    dest = {"uri": loc.uri, "bucket": loc.bucket, "key": loc.key}
    if target.scheme == "file":
        dest["root"] = str(Path(target.location).expanduser().resolve())
    return dest


def _findings_from(path: Path) -> list[Finding]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a report JSON file: {exc}") from None
    return [Finding.model_validate(f) for f in data.get("findings", [])]


def build_plan(catalog: Catalog, db_path: Path, action: Action | str, *, to: str | None = None,
               tags: dict[str, str] | None = None, policies: Iterable[str] = (),
               known_policies: Iterable[str] = (), findings: list[Finding] | None = None,
               now: datetime | None = None, decisions: Decisions | None = None) -> dict[str, Any]:
    """A plan for `action` over the objects in scope: without `policies`, the redundant copies in exact groups
    that findings name; with them, every object their findings name (a finding counts for each policy in
    its `policy` and `also`), near-group members too; with `decisions`, only those of the groups the reviewer
    reviewed and did not mark keep or not a duplicate. Masters, unsafe and reviewer-marked items are listed
    under `excluded` with the reason; what the scope left out is counted under `scope`. Changes nothing.

    UsageError: a policy that neither the findings nor `known_policies` (the config's policy set) has, or
    an action that the backend of some object in scope does not implement (`Capabilities.writes`)."""
    if action not in ACTIONS:
        raise UsageError(f"--action {action}: one of {', '.join(ACTIONS)}")
    action = Action(action)
    if action in (Action.quarantine, Action.transition) and not to:
        kind = "a prefix, bucket URI or folder" if action == Action.quarantine else "a storage class"
        raise UsageError(f"--action {action} needs --to ({kind})")
    wanted = set(policies)
    known = _Catalog(catalog)
    items: list[dict[str, Any]] = []
    excluded: list[dict[str, str]] = []
    left_out: dict[str, int] = {}
    named: set[str] = set()  # the findings' policy names (a few per policy set), for the unknown ones
    unable = _Unable(action)
    seen: set[str] = set()
    for finding in findings if findings is not None else catalog.each_finding():
        names = (finding.policy, *finding.also)
        named.update(names)
        if wanted and wanted.isdisjoint(names):
            left_out[_OTHER_POLICIES] = left_out.get(_OTHER_POLICIES, 0) + 1
            continue
        for uri in finding.uris:
            if uri in seen:
                continue
            seen.add(uri)
            group = known.group_of(uri)
            master = known.is_master(uri)
            if not wanted and not master and (group is None or group.kind != "exact"):
                reason = _NEAR_MEMBERS if group is not None else _NOT_COPIES
                left_out[reason] = left_out.get(reason, 0) + 1
                continue
            item = _item(known, uri, group, finding.policy, action, to, tags) if not master \
                else "a group master: never touched"
            if isinstance(item, str):
                excluded.append({"uri": uri, "policy": finding.policy, "reason": item})
                continue
            unable.count(item)
            items.append(item)
    _check_policies(wanted, named, set(known_policies))
    if decisions is not None:
        items = _reviewed(items, excluded, left_out, decisions, catalog)
    unable.check()
    scope: dict[str, Any] = {"policies": sorted(wanted), "left_out": left_out}
    if decisions is not None:
        scope["decisions"] = {"groups": len(decisions.groups), "report": decisions.report}
    plan = {
        "format": PLAN_FORMAT, "version": 1,
        "created": (now or datetime.now(UTC)).isoformat(),
        "db": str(db_path), "action": action, "to": to, "items": items, "excluded": excluded,
        "scope": scope,
    }
    plan["digest"] = plan_digest(plan)
    return plan


def _item(known: _Catalog, uri: str, group: Group | None, policy: str, action: Action, to: str | None,
          tags: dict[str, str] | None) -> dict[str, Any] | str:
    """The plan's item for an object in scope that is no master, or why it is excluded."""
    record = known.record(uri)
    if record is None:
        return "not in the catalog (or gone)"
    if action == Action.delete and (group is None or group.kind != "exact"):
        return "delete takes only redundant copies in exact groups"
    if record.status in (ObjectStatus.failed, ObjectStatus.gone):
        return f"status {record.status}"
    master = known.record(group.master) if group else None
    item: dict[str, Any] = {
        "uri": uri, "scheme": _scheme(uri), "bucket": record.bucket, "key": record.key,
        "size": record.size, "etag": record.etag, "version": record.version,
        "modified": record.modified.isoformat(), "storage_class": record.storage_class,
        "policy": policy, "group": group.id if group else None,
        "group_kind": group.kind if group else None, "master": group.master if group else None,
        "master_at": _where(master) if master else None,
    }
    if action == Action.quarantine:
        try:
            item["dest"] = _destination(record, to or "")
        except ValueError as exc:
            return f"unsafe destination: {exc}"
    if action == Action.tag:
        item["tags"] = tags or {"tierscan-policy": policy[:256], **({"tierscan-group": group.id} if group else {})}
    return item


def _reviewed(items: list[dict[str, Any]], excluded: list[dict[str, str]], left_out: dict[str, int],
              decisions: Decisions, catalog: Catalog) -> list[dict[str, Any]]:
    """The plan's items that the reviewer's decisions leave in: members (and, for near groups, their
    byte-identical copies) of the groups reviewed, unmarked. Marked ones go to `excluded`; the others are
    counted as left out."""
    marked = {uri: "the reviewer marked it keep" for g in decisions.groups for uri in g.keep}
    marked.update({uri: "the reviewer marked it not a duplicate" for g in decisions.groups for uri in g.not_duplicate})
    covered: set[str] = set()
    for decided in decisions.groups:
        group = catalog.group(decided.id)
        if group is None:
            continue
        members = [m.uri for m in group.members]
        covered.update(members)
        if group.kind == "near":
            covered.update(uri for copies in catalog.copies_of(members).values() for uri in copies)
    kept = []
    for item in items:
        if item["uri"] in marked:
            excluded.append({"uri": item["uri"], "policy": item["policy"], "reason": marked[item["uri"]]})
        elif item["uri"] not in covered:
            left_out[_UNREVIEWED] = left_out.get(_UNREVIEWED, 0) + 1
        else:
            kept.append(item)
    return kept


def unknown_decisions(decisions: Decisions, catalog: Catalog) -> list[str]:
    """What of `decisions` the catalog does not hold, in words: those files and groups are not acted on."""
    named = decisions.uris()
    lines = [f"not in the catalog, not acted on: {uri}" for uri in sorted(named - catalog.known(named))]
    lines += [f"group {g.id} is not among the catalog's groups (scanned again since the report?): its objects are "
              "left out" for g in decisions.groups if catalog.group(g.id) is None]
    return lines


# Why the scope left objects (or findings) out: the keys of a plan's `scope.left_out`, counted.
_NOT_COPIES = "object(s) in no exact group (flagged for what they are or hold, not as copies)"
_NEAR_MEMBERS = "near-duplicate group member(s) (similar, not equal: for human review)"
_OTHER_POLICIES = "finding(s) of other policies"
_UNREVIEWED = "object(s) in no group the reviewer's decisions cover (--decisions)"


def _check_policies(wanted: set[str], named: set[str], configured: set[str]) -> None:
    """UsageError naming each `--policy` that neither the findings nor the config's policy set has, with the
    closest known name."""
    known = sorted(named | configured)
    problems = []
    for name in sorted(wanted - set(known)):
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(known) or 'none'})"
        problems.append(f"--policy {name}: not a policy of the findings or of the config's policy set{hint}")
    if problems:
        raise UsageError("\n".join(problems))


class _Unable:
    """The planned objects whose backend cannot carry out the action, counted by scheme with one example each,
    so that the plan is refused as a whole rather than skipped item by item at execute time."""

    def __init__(self, action: Action):
        self._action = action
        self._why: dict[str, str | None] = {}  # scheme -> why it cannot (None: it can)
        self._found: dict[str, tuple[int, str]] = {}  # scheme -> (objects, first URI)

    def count(self, item: dict[str, Any]) -> None:
        scheme = item["scheme"]
        if scheme not in self._why:
            self._why[scheme] = _cannot(self._action, connector_class(scheme).capabilities)
        if self._why[scheme] is not None:
            n, first = self._found.get(scheme, (0, item["uri"]))
            self._found[scheme] = (n + 1, first)

    def check(self) -> None:
        if not self._found:
            return
        lines = [f"--action {self._action}: {self._why[scheme]}: {n} object(s) in scope on {scheme}:// "
                 f"(first {first!r})" for scheme, (n, first) in sorted(self._found.items())]
        lines.append("no plan written: a plan acts on every object in scope. Plan from a catalog of only the buckets "
                     "whose backend can (scan them with a --db of their own), or with --findings naming only them")
        raise UsageError("\n".join(lines))


def plan_digest(plan: dict[str, Any]) -> str:
    """SHA-256 over what the plan does (action, destination, database, items): what an approval binds to."""
    body = {k: plan.get(k) for k in ("format", "version", "db", "action", "to", "items")}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=True).encode()).hexdigest()


def write_plan(plan: dict[str, Any], path: Path) -> None:
    with atomic_write(path) as fh:
        fh.write(json.dumps(plan, indent=2, ensure_ascii=False) + "\n")


def load_plan(path: Path) -> dict[str, Any]:
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path}: not a plan file: {exc}") from None
    if not isinstance(plan, dict) or plan.get("format") != PLAN_FORMAT or plan.get("action") not in ACTIONS:
        raise UsageError(f"{path}: not a tierscan plan (format {PLAN_FORMAT!r})")
    plan["action"] = Action(plan["action"])
    items = plan.get("items")
    if not isinstance(items, list) or not isinstance(plan.get("db"), str):
        raise UsageError(f"{path}: a plan needs `db` and a list of `items`")
    for n, item in enumerate(items):
        if not _well_formed(item, plan["action"]):
            raise UsageError(f"{path}: item {n} is malformed (uri, scheme, bucket, key, size and, where "
                             "given, dest and master_at must be as `tierscan apply --plan` writes them)")
    return plan


def _well_formed(item: Any, action: Action) -> bool:
    def place(value: Any, *names: str) -> bool:
        return isinstance(value, dict) and all(isinstance(value.get(n), str) for n in names)

    return (place(item, "uri", "scheme", "bucket", "key") and type(item.get("size")) is int
            and (action != Action.quarantine or place(item.get("dest"), "uri", "bucket", "key"))
            and (action != Action.tag or isinstance(item.get("tags"), dict))
            and (item.get("master_at") is None or place(item["master_at"], "scheme", "bucket", "key")))


def describe_plan(plan: dict[str, Any], problems: dict[int, str] | None = None) -> list[str]:
    """What executing the plan would change, item by item, with scheme, bucket and key exactly as they will
    be used (repr-escaped, so a newline or control character in a key is visible), where quarantine puts
    the object, and which master must hold the same bytes and how that is proven. `problems`
    (`review_problems`) marks the items execution would skip against the catalog as it is now."""
    problems = problems or {}
    action, to = plan["action"], plan.get("to")
    lines = [(f"plan: {action}{f' to {to!r}' if to else ''}, {len(plan['items'])} object(s), "
              f"{len(plan.get('excluded', []))} excluded; catalog {plan['db']!r}"), *_describe_scope(plan)]
    for n, item in enumerate(plan["items"]):
        lines.append(f"  [{n}] {action} {_show(item)} ({item['size']} bytes, uri {item['uri']!r})")
        if "dest" in item:
            lines.append(f"      to {_show({'scheme': item['scheme'], **item['dest']})} (uri {item['dest']['uri']!r})")
        if "tags" in item:
            lines.append(f"      tags {item['tags']!r}")
        if action in _REMOVES:
            if _needs_master(action, item):
                master = item.get("master_at")
                lines.append(f"      master {_show(master) if master else 'not in the catalog: will be skipped'} "
                             f"(uri {item['master']!r})")
                lines.append(f"      proof: {_proof_rule(item['scheme'], master['scheme'] if master else '')}")
            else:
                lines.append("      master: none (not in an exact group); the bytes stay in the quarantine copy")
        if n in problems:
            lines.append(f"      WILL BE SKIPPED: {problems[n]}")
    for ex in plan.get("excluded", []):
        lines.append(f"  excluded {ex['uri']!r}: {ex['reason']}")
    lines.append(f"digest: {plan_digest(plan)}")
    return lines


def _describe_scope(plan: dict[str, Any]) -> list[str]:
    """How the plan's objects were chosen, and what that left out and why (a plan without `scope` says
    nothing)."""
    scope = plan.get("scope")
    if not isinstance(scope, dict):
        return []
    chosen, left_out = scope.get("policies"), scope.get("left_out")
    if isinstance(chosen, list) and chosen:
        rule = (f"scope: the objects that findings of {', '.join(map(repr, chosen))} name (--policy), "
                "near-duplicate group members included")
    else:
        rule = ("scope: redundant copies in exact groups only (no --policy); name a policy with --policy to "
                "act on what its findings name")
    lines = [rule]
    decided = scope.get("decisions")
    if isinstance(decided, dict):
        lines.append(f"  narrowed by a reviewer's decisions (--decisions): {decided.get('groups')} group(s) reviewed, "
                     "marked files excluded")
    for reason, n in (left_out.items() if isinstance(left_out, dict) else ()):
        lines.append(f"  left out: {n} {reason}")
    return lines


def _show(where: dict[str, Any]) -> str:
    return f"{where['scheme']} bucket {where['bucket']!r} key {where['key']!r}"


def _proof_rule(copy_scheme: str, master_scheme: str) -> str:
    if copy_scheme == master_scheme == "file":
        return "both files re-read now and compared byte by byte (no symlinks, not one inode)"
    vouched = {"s3": "a plain-MD5 ETag, a full-object SHA checksum or a multipart ETag of the same part layout",
               "gs": "md5Hash"}
    shared = " / ".join(dict.fromkeys(v for k, v in vouched.items() if k in (copy_scheme, master_scheme)))
    return (f"{'the provider digest both objects share (' + shared + '), else ' if shared else ''}"
            "both objects read now and compared byte by byte; not one object")


# ---- journal -------------------------------------------------------------------------------------

class Journal:
    """Append-only JSON lines; each entry is flushed and fsynced before the call returns."""

    def __init__(self, path: Path):
        self.path = path
        new = not path.exists()
        self._fh = open(path, "a", encoding="utf-8")  # noqa: SIM115 (open until close(), entry by entry)
        if new:
            fsync_dir(path.parent)

    def write(self, entry: dict[str, Any]) -> None:
        self._fh.write(json.dumps({**entry, "at": datetime.now(UTC).isoformat()}, ensure_ascii=True) + "\n")
        self._fh.flush()
        os.fsync(self._fh.fileno())

    def close(self) -> None:
        self._fh.close()



def read_journal(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise UsageError(f"{path}: no such journal")
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if n == len(path.read_text(encoding="utf-8").splitlines()):
                break  # a torn last line (a crash mid-write): its change was never made
            raise UsageError(f"{path}:{n}: not a journal line") from None
    return entries


# ---- execute -------------------------------------------------------------------------------------

@dataclass
class ApplyResult:
    done: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)


def _state_dict(state: ObjectState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"size": state.size, "etag": state.etag, "version": state.version, "storage_class": state.storage_class,
            "modified": state.modified.isoformat() if state.modified else None}


def _same(item: dict[str, Any], now: ObjectState) -> bool:
    """Whether the object is still the one the plan saw: ETag and version where the provider has them,
    size always, and the modified time where there is no ETag (local files)."""
    if now.size != item["size"]:
        return False
    if item.get("etag") and now.etag and now.etag != item["etag"]:
        return False
    if item.get("version") and now.version and now.version != item["version"]:
        return False
    if item.get("etag") is None and now.modified is not None:
        return datetime.fromisoformat(item["modified"]) == now.modified
    return True


def _default_factory(config: Config) -> ConnectorFactory:
    made: dict[str, Connector] = {}

    def get(scheme: str) -> Connector:
        if scheme not in made:
            made[scheme] = connector_class(scheme)(config)
        return made[scheme]

    get.made = made  # type: ignore[attr-defined]
    return get


def _where(record: InventoryRecord) -> dict[str, str]:
    return {"scheme": _scheme(record.uri), "bucket": record.bucket, "key": record.key}


def _location(record: InventoryRecord) -> Location:
    return Location(record.uri, record.bucket, record.key)


def _names_itself(record: InventoryRecord) -> bool:
    """Whether the record's URI names its own bucket and key (a restored catalog is input, not truth)."""
    return connector_class(_scheme(record.uri)).names(record.uri, record.bucket, record.key)


def _needs_master(action: Action, item: dict[str, Any]) -> bool:
    """Delete always proves its master; quarantine does when the object is a copy in an exact group."""
    return action == Action.delete or item.get("group_kind") == "exact"


def _differs(item: dict[str, Any], record: InventoryRecord, plan: dict[str, Any]) -> str | None:
    """Why the item does not match the catalog's record for its URI (execution uses the record's values)."""
    if not _names_itself(record):
        return "the catalog's record does not name its own bucket and key"
    for name, value in _where(record).items():
        if item.get(name) != value:
            return f"the plan's {name} {item.get(name)!r} is not the catalog's {value!r} for this URI"
    if plan["action"] == Action.quarantine:
        # A local quarantine folder as resolved when the plan was written (a relative --to names it from
        # the planning directory); the review shows the resulting path.
        given = item.get("dest")
        to = given["root"] if isinstance(given, dict) and isinstance(given.get("root"), str) else plan.get("to") or ""
        try:
            dest = _destination(record, to)
        except (ValueError, UsageError) as exc:
            return f"unsafe destination: {exc}"
        if item.get("dest") != dest:
            return "the plan's destination is not the one the catalog's record gives"
    return None


_CHUNK = 8 << 20  # bytes a read while comparing two objects


async def _same_bytes(a: AsyncGenerator[bytes, None], b: AsyncGenerator[bytes, None]) -> str | None:
    """The SHA-256 of two byte streams if they are equal, else None; holds at most a chunk of each."""
    digest = hashlib.sha256()
    left = right = b""
    try:
        while True:
            left = left or await anext(a, b"")
            right = right or await anext(b, b"")
            if not left or not right:
                return digest.hexdigest() if not left and not right else None
            n = min(len(left), len(right))
            if left[:n] != right[:n]:
                return None
            digest.update(left[:n])
            left, right = left[n:], right[n:]
    finally:
        await a.aclose()
        await b.aclose()


async def _check_master(conn: Connector, loc: Location, now: ObjectState, mconn: Connector,
                        master: InventoryRecord) -> tuple[str | None, dict[str, Any]]:
    """The master as it is now: refused outright, missing or changed since the scan, or proven to hold the
    copy's bytes. Returns (why the copy stays, None when proven; how it was proven)."""
    mloc = _location(master)
    try:
        mnow = await mconn.stat(mloc)
    except (ObjectError, UsageError, OSError) as exc:
        return f"cannot check its master {master.uri!r}: {exc}", {}
    why = _refused(loc, now, mloc, mnow) if mnow is not None else None
    if why:
        return why, {}
    if mnow is None or mnow.size != master.size or (master.etag and mnow.etag and master.etag != mnow.etag):
        return f"its master {master.uri!r} is missing or changed: the copy may be the last one", {}
    return await _prove(conn, loc, now, mconn, mloc, mnow)


def _refused(loc: Location, now: ObjectState, mloc: Location, mnow: ObjectState) -> str | None:
    """Why a copy may never be removed on the strength of this master, whatever their bytes."""
    if now.link or mnow.link:
        return "refused: the copy or its master is a symbolic link (or under a symlinked folder)"
    if (_scheme(loc.uri), loc.bucket, loc.key) == (_scheme(mloc.uri), mloc.bucket, mloc.key) or (
            now.identity is not None and now.identity == mnow.identity):
        return "refused: the copy and its master are one object"
    return None


async def _prove(conn: Connector, loc: Location, now: ObjectState,
                 mconn: Connector, mloc: Location, mnow: ObjectState) -> tuple[str | None, dict[str, Any]]:
    """Whether the master holds the copy's bytes now: (why not, None when proven; how it was proven)."""
    if now.size != mnow.size:
        return "master differs: another size now", {}
    try:
        mine, theirs = await conn.vouched(loc, now), await mconn.vouched(mloc, mnow)
        common = sorted(mine.keys() & theirs.keys())
        # A kind that names a part layout proves equality when equal, nothing when not.
        unequal = [k for k in common if "@" not in k and mine[k] != theirs[k]]
        if unequal:
            return f"master differs: its {unequal[0]} is another", {}
        for kind in common:
            if mine[kind] == theirs[kind]:
                return None, {"by": kind, "value": mine[kind]}
        sha256 = await _same_bytes(conn.read_chunks(loc, now, _CHUNK), mconn.read_chunks(mloc, mnow, _CHUNK))
    except (ObjectError, UsageError, OSError) as exc:
        return f"cannot prove the master holds the same bytes: {exc}", {}
    if sha256 is None:
        return "master differs: compared byte by byte", {}
    return None, {"by": "read", "sha256": sha256}


async def _quarantine(conn: Connector, src: Location, dst: Location, expect: ObjectState) -> dict[str, Any]:
    """Copy then delete (or move), resumable: a destination that already exists is used only when it is
    proven to hold the source's bytes (a resumed run), and never overwritten."""
    if "move" in conn.capabilities.writes:
        moved = await conn.move(src, dst, expect=expect)
        return {"after": _state_dict(moved)}
    after = await conn.stat(dst)
    if after is None:
        after = await conn.copy(src, dst, expect=expect)
    else:
        why, _ = await _prove(conn, src, expect, conn, dst, after)
        if why:
            raise UsageError(f"{dst.uri}: already exists and is not proven to be this object ({why}); not overwritten")
    marker = await conn.delete(src, expect=expect)
    return {"after": _state_dict(after), "delete_marker": marker}


class _Catalog:
    """The catalog as planning and execution see it: records, group masters and each member's group, looked
    up by URI as items come (nothing held per object)."""

    def __init__(self, catalog: Catalog):
        self._catalog = catalog
        self._last: Group | None = None  # a group's members come one after another: read it once
        catalog.group_members()

    def record(self, uri: str) -> InventoryRecord | None:
        """Its record, unless it is not in the catalog or gone."""
        record = self._catalog.records_of([uri]).get(uri)
        return record if record is not None and record.status != ObjectStatus.gone else None

    def is_master(self, uri: str) -> bool:
        return self._catalog.is_master(uri)

    def group_of(self, uri: str) -> Group | None:
        """Its group: an exact one before a near one."""
        last = self._last  # an object is in one exact group at most
        if last is not None and last.kind == "exact" and any(m.uri == uri for m in last.members):
            return last
        self._last = self._catalog.group_of(uri)
        return self._last

    def vet(self, plan: dict[str, Any], item: dict[str, Any]) -> tuple[str | None, InventoryRecord | None,
                                                                        InventoryRecord | None]:
        """(why the item is skipped, or None; its record; the master to prove, when the action needs one)."""
        uri = item["uri"]
        if self.is_master(uri):
            return "a group master now: never touched", None, None
        record = self.record(uri)
        if record is None:
            return "not in the catalog (or gone)", None, None
        why = _differs(item, record, plan)
        if why:
            return f"{why}: not touched", None, None
        if plan["action"] not in _REMOVES:
            return None, record, None
        group = self.group_of(uri)
        if plan["action"] == Action.delete and (group is None or group.kind != "exact"):
            return "no longer a redundant copy in an exact group", None, None
        if item.get("group_kind") != (group.kind if group else None):
            # The catalog, not the plan, says whether a master must be proven (and the review said which).
            return "its group is not the one reviewed: plan again", None, None
        if not _needs_master(plan["action"], item):
            return None, record, None
        assert group is not None
        if group.master != item.get("master"):
            return f"its master is now {group.master!r}, not the reviewed {item.get('master')!r}", None, None
        master = self.record(group.master)
        if master is None or not _names_itself(master) or item.get("master_at") != _where(master):
            return f"its master {group.master!r} is not in the catalog as reviewed: the copy may be the last one", \
                None, None
        return None, record, master


def review_problems(plan: dict[str, Any], catalog: Catalog) -> dict[int, str]:
    """Item number -> why execution would skip it with the catalog as it is now (for the review)."""
    known = _Catalog(catalog)
    return {n: why for n, item in enumerate(plan["items"]) if (why := known.vet(plan, item)[0])}


async def _execute(plan: dict[str, Any], journal: Journal, catalog: Catalog, factory: ConnectorFactory,
                   result: ApplyResult) -> None:
    known = _Catalog(catalog)
    for seq, item in enumerate(plan["items"]):
        uri = item["uri"]
        ready = await _prepare(plan, seq, item, known, factory)
        if isinstance(ready, str):
            journal.write({"type": "skipped", "seq": seq, "uri": uri, "reason": ready})
            result.skipped.append((uri, ready))
            continue
        journal.write(ready.entry)  # fsynced before the change
        try:
            outcome = await _change(plan["action"], ready)
        except (ObjectError, UsageError, OSError) as exc:
            journal.write({"type": "failed", "seq": seq, "uri": uri, "error": str(exc)})
            result.failed.append((uri, str(exc)))
            continue
        journal.write({"type": "done", "seq": seq, "uri": uri, **outcome})
        result.done.append(uri)


@dataclass(frozen=True)
class _Ready:
    """An item that passed every check: its connector and location, its state now and the intent entry."""

    conn: Connector
    loc: Location
    now: ObjectState
    entry: dict[str, Any]


async def _prepare(plan: dict[str, Any], seq: int, item: dict[str, Any], known: _Catalog,
                   factory: ConnectorFactory) -> _Ready | str:
    """The item checked against the catalog, the connector and the object now, with its intent entry; or
    why it is skipped."""
    action = plan["action"]
    why, record, master = known.vet(plan, item)
    if why or record is None:
        return why or "not in the catalog"
    scheme, loc = _scheme(record.uri), _location(record)  # every location comes from the catalog
    conn = factory(scheme)
    if why := _cannot(action, conn.capabilities):
        return why
    now = await _unchanged(conn, loc, item)
    if isinstance(now, str):
        return now
    entry: dict[str, Any] = {"type": "intent", "seq": seq, "op": action, "uri": item["uri"], "scheme": scheme,
                             "bucket": record.bucket, "key": record.key, "before": _state_dict(now)}
    if master is not None:
        why, proof = await _check_master(conn, loc, now, factory(_scheme(master.uri)), master)
        if why:
            return why
        entry["master"] = {"uri": master.uri, **proof}
    try:
        entry.update(await _undo_details(plan, item, conn, loc, record.bucket))
    except (ObjectError, UsageError) as exc:
        return f"cannot prepare: {exc}"
    return _Ready(conn, loc, now, entry)


def _cannot(action: Action, capabilities: Capabilities) -> str | None:
    """Why a backend with these capabilities cannot carry out `action` (None: it can)."""
    need = _NEEDS.get(action)
    if action == Action.quarantine and not ({"move"} <= capabilities.writes
                                       or {"copy", "delete"} <= capabilities.writes):
        need = "copy"
    if need and need not in capabilities.writes:
        return f"the {capabilities.name} connector cannot {action} objects"
    return None


async def _unchanged(conn: Connector, loc: Location, item: dict[str, Any]) -> ObjectState | str:
    """The object's state now, or why it is not the object the plan was made for."""
    try:
        now = await conn.stat(loc)
    except (ObjectError, OSError) as exc:
        return f"cannot check it: {exc}"
    if now is None:
        return "gone since the plan"
    if not _same(item, now):
        return "changed since the plan (ETag, version, size or modified time differ): not touched"
    return now


async def _undo_details(plan: dict[str, Any], item: dict[str, Any], conn: Connector, loc: Location,
                        bucket: str) -> dict[str, Any]:
    """What undo needs besides the state before: the bucket's versioning (asked only of a backend that
    declares `capabilities.versioning`), and the tags before, the destination or the storage class."""
    details: dict[str, Any] = {"versioned": conn.capabilities.versioning and await conn.versioned(bucket)}
    action = plan["action"]
    if action == Action.tag:
        details["tags_before"] = await conn.get_tags(loc)
        details["tags"] = {**details["tags_before"], **item["tags"]}
    elif action == Action.quarantine:
        details["dest"] = item["dest"]  # equal to the one the catalog's record gives (`_differs`)
    elif action == Action.transition:
        details["storage_class"] = plan["to"]
    return details


async def _change(action: Action, ready: _Ready) -> dict[str, Any]:
    """Make the journalled change; what its `done` entry records besides the item."""
    conn, loc, now, entry = ready.conn, ready.loc, ready.now, ready.entry
    if action == Action.tag:
        await conn.set_tags(loc, entry["tags"], expect=now)
    elif action == Action.quarantine:
        dest = entry["dest"]
        return await _quarantine(conn, loc, Location(dest["uri"], dest["bucket"], dest["key"]), now)
    elif action == Action.transition:
        await conn.set_tier(loc, entry["storage_class"], expect=now)
    elif action == Action.delete:
        return {"delete_marker": await conn.delete(loc, expect=now)}
    return {}


def execute_plan(plan: dict[str, Any], approve: str | None, journal_path: Path, catalog: Catalog, config: Config,
                 factory: ConnectorFactory | None = None, plan_path: Path | None = None) -> ApplyResult:
    """Run an approved plan; see the module docstring for the checks made before each change. `approve`: at
    least `APPROVE_MIN` leading hex digits of the plan's digest; a refusal never shows the digest (a review
    does), so approving is reviewing. `plan_path` names the plan in that message."""
    digest = plan_digest(plan)
    review = f"`tierscan apply --execute {plan_path or 'PLAN'}`"
    if not approve:
        raise UsageError(f"the plan is not approved: review it with {review}, then pass --approve with the "
                         "digest the review prints")
    if len(approve) < APPROVE_MIN:
        raise UsageError(f"--approve: give at least {APPROVE_MIN} hex digits of the digest the review prints")
    if not digest.startswith(approve.lower()):  # the right digest is not shown: only a review shows it
        raise UsageError(f"this plan's digest does not start with what --approve gives; review the plan again "
                         f"with {review}")
    if journal_path.exists():
        raise UsageError(f"{journal_path}: exists; name a new journal file (each run keeps its own)")
    result = ApplyResult()
    journal = Journal(journal_path)
    journal.write({"type": "header", "tool": "tierscan", "version": 1, "action": plan["action"],
                   "to": plan.get("to"), "digest": digest, "items": len(plan["items"])})
    _run_journalled(lambda get: _execute(plan, journal, catalog, get, result), journal, config, factory)
    return result


def _run_journalled(work: Callable[[ConnectorFactory], Awaitable[None]], journal: Journal, config: Config,
                    factory: ConnectorFactory | None) -> None:
    """Run `work` with connectors from `factory` (default: one per scheme, closed afterwards), then close the
    journal whatever happened."""
    get = factory or _default_factory(config)

    async def run() -> None:
        try:
            await work(get)
        finally:
            if factory is None:
                for conn in get.made.values():  # type: ignore[attr-defined]
                    await conn.aclose()

    try:
        asyncio.run(run())
    finally:
        journal.close()


# ---- undo ----------------------------------------------------------------------------------------

@dataclass
class UndoResult:
    undone: list[str] = field(default_factory=list)
    not_undone: list[tuple[str, str]] = field(default_factory=list)


async def _undo_one(intent: dict[str, Any], done: dict[str, Any] | None, factory: ConnectorFactory) -> str | None:
    """Reverse one change; returns why it was not reversed, or None."""
    conn = factory(intent["scheme"])
    loc = Location(intent["uri"], intent["bucket"], intent["key"])
    op = intent["op"]
    if op == Action.tag:
        now = await conn.stat(loc)
        if now is None:
            return "the object is gone"
        await conn.set_tags(loc, intent["tags_before"], expect=now)
        return None
    if op == Action.quarantine:
        d = intent["dest"]
        dst = Location(d["uri"], d["bucket"], d["key"])
        before = intent["before"]
        src_now, dst_now = await conn.stat(loc), await conn.stat(dst)
        marker = (done or {}).get("delete_marker")
        if src_now is None and marker:
            await conn.remove_delete_marker(loc, marker)  # the very version is current again
            src_now = await conn.stat(loc)
        if src_now is None and dst_now is not None:
            if "move" in conn.capabilities.writes:
                await conn.move(dst, loc, expect=dst_now)
                return None
            await conn.copy(dst, loc, expect=dst_now)
            src_now = await conn.stat(loc)
        if src_now is None:
            return "neither the object nor its quarantine copy exists"
        if dst_now is not None:  # both exist: the change (or its undo) stopped between copy and delete
            if src_now.size != before["size"]:
                return "the original location holds another object now; the quarantine copy is kept"
            await conn.delete(dst, expect=dst_now)
        return None
    if op == Action.delete:
        marker = (done or {}).get("delete_marker")
        if not conn.capabilities.versioning:
            return f"deleted for good: the {conn.capabilities.name} connector keeps no versions"
        if not marker:
            return "a delete without a delete marker cannot be undone (restore a noncurrent version by hand)"
        await conn.remove_delete_marker(loc, marker)
        return None
    return f"{op} is not undone by tierscan"


def undo_journal(path: Path, config: Config, factory: ConnectorFactory | None = None) -> UndoResult:
    """Reverse the journal's changes, newest first; each undo step is journalled in the same file, so an
    interrupted undo can be run again."""
    entries = read_journal(path)
    intents = {e["seq"]: e for e in entries if e.get("type") == "intent"}
    dones = {e["seq"]: e for e in entries if e.get("type") == "done"}
    undone = {e["seq"] for e in entries if e.get("type") in ("undone", "undo-skipped")}
    result = UndoResult()
    journal = Journal(path)

    async def run(get: ConnectorFactory) -> None:
        for seq in sorted(intents, reverse=True):
            if seq in undone:
                continue
            intent = intents[seq]
            journal.write({"type": "undo-intent", "seq": seq, "uri": intent["uri"]})
            try:
                why = await _undo_one(intent, dones.get(seq), get)
            except (ObjectError, UsageError, OSError) as exc:
                why = f"failed: {exc}"
            if why is None:
                journal.write({"type": "undone", "seq": seq, "uri": intent["uri"]})
                result.undone.append(intent["uri"])
            else:
                if not why.startswith("failed"):
                    journal.write({"type": "undo-skipped", "seq": seq, "uri": intent["uri"], "reason": why})
                result.not_undone.append((intent["uri"], why))

    _run_journalled(run, journal, config, factory)
    return result


def findings_file(path: Path | None) -> list[Finding] | None:
    return _findings_from(path) if path else None


def parse_tags(values: Iterable[str]) -> dict[str, str]:
    tags = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise UsageError(f"--tag {value}: expected KEY=VALUE")
        tags[key] = val
    return tags

