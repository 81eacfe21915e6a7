"""The HTML report's pictures: every near-duplicate group as a row of thumbnails, centre first, each with
where it is stored, its size and dimensions, how it differs from the centre and its personal-data badges;
every exact group with its master's thumbnail and each copy's location. A reviewer marks files "keep" and
near members "not a duplicate" and downloads the decisions as a file (`tierscan.scanner.core.decisions`)
that `tierscan near ignore --decisions` and `tierscan apply --decisions` read back; the page needs no
server (a Blob download works from file://).

Scale: the groups are written into the page once, each a few hundred bytes, and shown `PAGE` at a time
with a filter box; images load lazily. Thumbnails are files in a folder beside the page (`<name>_files/`,
one file per distinct picture) when the page is written to a file, and inline data URIs when it goes to
standard output, so a page of thousands of groups stays a few MB and opens at once.

What "how it differs" can say comes from what the catalog keeps of each file (format, dimensions, size,
metadata): re-encoded, resized, cropped or reshaped, rotated, metadata removed. The verifier's evidence
(mirrored, recoloured) is not stored, so flips and colour changes are matched but not named.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from html import escape
from pathlib import Path
from urllib.parse import quote

from tierscan.scanner.core.decisions import DECISIONS_FORMAT
from tierscan.scanner.core.models import Group, InventoryRecord
from tierscan.scanner.core.units import human_bytes
from tierscan.scanner.report.build import short_uri
from tierscan.scanner.scan.catalog import Catalog

__all__ = ["GROUPS_CSS", "GROUPS_SCRIPT", "PAGE", "Pictures", "how_it_differs", "picture_sections"]

PAGE = 50  # groups shown at a time
_SAME_ASPECT = 0.02  # relative aspect-ratio difference under which a size change is a resize
_BADGE_COLOURS = {"gps": "#c92a2a", "serial": "#5f3dc4", "owner": "#2f9e44", "timestamp": "#1c7ed6"}


class Pictures:
    """Where the picture sections find thumbnails and records (the catalog), and where the thumbnails go:
    files in `folder` (linked by its name, relative to the page), or inline when `folder` is None."""

    def __init__(self, catalog: Catalog, folder: Path | None = None):
        self.catalog = catalog
        self.folder = folder

    @classmethod
    def beside(cls, catalog: Catalog, page: Path) -> Pictures:
        """Thumbnails in `<page name>_files/` beside `page`, emptied of earlier thumbnails first."""
        folder = page.with_name(f"{page.stem}_files")
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.webp"):
            old.unlink()
        return cls(catalog, folder)

    def src(self, uris: Sequence[str]) -> str | None:
        """The image source of the first of `uris` (an object, then its byte-identical copies) that has a
        thumbnail; None when none has."""
        data = self.catalog.thumbnail(uris)
        if data is None:
            return None
        if self.folder is None:
            return "data:image/webp;base64," + base64.b64encode(data).decode("ascii")
        name = hashlib.sha256(data).hexdigest()[:32] + ".webp"  # one file per distinct picture
        path = self.folder / name
        if not path.exists():
            path.write_bytes(data)
        return f"{quote(self.folder.name)}/{name}"


def how_it_differs(centre: InventoryRecord | None, member: InventoryRecord | None) -> list[str]:
    """How a near member differs from its group's centre, in words, from what the catalog keeps of both."""
    if centre is None or member is None:
        return []
    found: list[str] = []
    if centre.format and member.format and centre.format != member.format:
        found.append(f"re-encoded as {member.format}")
    cw, ch, mw, mh = centre.width, centre.height, member.width, member.height
    if cw and ch and mw and mh and (cw, ch) != (mw, mh):
        aspect = (mw / mh) / (cw / ch)
        if abs(math.log(aspect)) < _SAME_ASPECT:
            found.append(f"resized or cropped to {100 * mw / cw:.0f}% ({mw}\u00d7{mh})")
        elif cw != ch and abs(math.log((mw / mh) * (cw / ch))) < _SAME_ASPECT and \
                abs(math.log(max(mw, mh) / max(cw, ch))) < _SAME_ASPECT:
            found.append("rotated")
        else:
            found.append(f"cropped or reshaped ({mw}\u00d7{mh} of {cw}\u00d7{ch})")
    elif not found and member.size != centre.size:
        found.append("re-encoded (same size in pixels)")
    lost = [k for k in centre.personal_data if k not in member.personal_data]
    if lost:
        found.append(f"metadata removed ({', '.join(lost)})")
    return found


def picture_sections(groups: Callable[[], Iterable[Group]], pictures: Pictures, report_time: str
                     ) -> Iterator[str]:
    """The near-duplicate section, then the exact groups' pictures, then the decisions bar: each group
    made as it is reached (`groups` is read once per section)."""
    yield ('<h2 id="near">Near-duplicate groups to review</h2>'
           '<p class="caveat">Each thumbnail is a small copy of the image it shows, personal images included; '
           "keep this report as carefully as the images. A scan makes none with "
           "<code>tierscan scan --no-thumbnails</code> or <code>scan: {thumbnails: false}</code> in the config, "
           "and then deletes those the catalog holds.</p>"
           '<p class="muted">Centre first (the copy to keep); each other picture says how it differs from the '
           "centre where the catalog can tell (flips and colour changes are matched but not named). Mark files "
           "<b>keep</b>, or near members <b>not a duplicate</b>, then download the decisions for "
           "<code>tierscan near ignore --decisions FILE</code> and <code>tierscan apply --decisions FILE</code>."
           "</p>")
    yield from _gallery("near", (g for g in groups() if g.kind == "near"), pictures)
    yield '<h2 id="exact-pictures">Exact duplicate groups: every copy</h2>'
    yield from _gallery("exact", (g for g in groups() if g.kind == "exact"), pictures)
    yield (f'<div id="decisions" class="decisions" data-format="{DECISIONS_FORMAT}" '
           f'data-report="{escape(report_time)}"><span id="decided">No decisions yet.</span> '
           '<button type="button" id="download-decisions">Download decisions</button></div>')


def _gallery(kind: str, groups: Iterable[Group], pictures: Pictures) -> Iterator[str]:
    yield (f'<div class="pager" data-for="{kind}-groups"><input type="search" placeholder="Filter by file, bucket, '
           'region, jurisdiction or personal-data kind" aria-label="Filter groups"> <button type="button" '
           'data-step="-1">&lsaquo; Previous</button> <span class="at"></span> <button type="button" '
           f'data-step="1">Next &rsaquo;</button></div><div id="{kind}-groups" class="gallery" data-page="{PAGE}">')
    count = 0
    for group in groups:
        count += 1
        yield _near_group(group, pictures) if kind == "near" else _exact_group(group, pictures)
    if not count:
        yield f'<p class="muted">No {kind} duplicate groups.</p>'
    yield "</div>"


def _near_group(group: Group, pictures: Pictures) -> str:
    uris = [m.uri for m in group.members]
    records = pictures.catalog.records_of([*uris, *(c for copies in group.copies.values() for c in copies)])
    centre = records.get(group.master)
    cards = []
    for member in group.members:
        record = records.get(member.uri)
        copies = group.copies.get(member.uri, [])
        is_centre = member.uri == group.master
        role = "centre" if is_centre else f"pHash distance {member.distance}"
        how = [] if is_centre else how_it_differs(centre, record)
        cards.append(_card(member.uri, record, pictures.src([member.uri, *copies]), role, how,
                           [(c, records.get(c)) for c in copies], not_duplicate=not is_centre))
    return _section(group, "".join(cards), records.values())


def _exact_group(group: Group, pictures: Pictures) -> str:
    uris = [m.uri for m in group.members]
    records = pictures.catalog.records_of(uris)
    master = records.get(group.master)
    others = [(m.uri, records.get(m.uri)) for m in group.members if m.uri != group.master]
    card = _card(group.master, master, pictures.src(uris), "master (kept)", [], others, not_duplicate=False,
                 open_copies=True)
    return _section(group, card, records.values())


def _section(group: Group, cards: str, records: Iterable[InventoryRecord | None]) -> str:
    files = len(group.members) + sum(len(c) for c in group.copies.values())
    spans = [name for name, on in (("tiers", group.spans_tiers), ("regions", group.spans_regions),
                                   ("jurisdictions", group.spans_jurisdictions)) if on]
    words = " ".join(sorted({w for r in records if r is not None
                             for w in (r.uri, r.bucket, r.region, r.jurisdiction, r.tier.value, *r.personal_data)}))
    summary = (f"{len(group.members)} pictures, {files} files" if group.kind == "near"
               else f"{len(group.members)} byte-identical copies")
    return (f'<section class="grp" id="{escape(group.id)}" data-group="{escape(group.id)}" '
            f'data-kind="{group.kind}" data-centre="{escape(group.master)}" data-q="{escape(words.lower())}">'
            f'<h3>{escape(group.id)} <span class="muted">{summary}'
            f"{'; spans ' + ', '.join(spans) if spans else ''}"
            f"{'; personal data' if group.has_personal_data else ''}</span>"
            '<label class="rev"><input type="checkbox" data-d="reviewed"> reviewed</label></h3>'
            f'<div class="row">{cards}</div></section>')


def _card(uri: str, record: InventoryRecord | None, src: str | None, role: str, how: list[str],
          copies: list[tuple[str, InventoryRecord | None]], *, not_duplicate: bool, open_copies: bool = False
          ) -> str:
    name = escape(short_uri(uri))
    if src is not None:
        picture = f'<img loading="lazy" decoding="async" src="{escape(src)}" alt="thumbnail of {name}">'
    else:
        picture = f'<div class="noimg">no thumbnail<small>{_no_thumbnail(record)}</small></div>'
    lines = [f'<div class="role">{escape(role)}</div>', f'<div class="name" title="{escape(uri)}">{name}</div>']
    if record is not None:
        lines.append(f"<div>{_where(record)}</div>")
        size = f"{record.width}\u00d7{record.height} {record.format or ''}" if record.width and record.height \
            else (record.format or "")
        lines.append(f"<div>{human_bytes(record.size)}{'; ' + escape(size.strip()) if size.strip() else ''}</div>")
        if record.personal_data:
            lines.append('<div class="badges">' + "".join(
                f'<span class="badge" style="background:{_BADGE_COLOURS.get(k, "#495057")}">{escape(k)}</span>'
                for k in record.personal_data) + "</div>")
    if how:
        lines.append(f'<div class="how">{escape("; ".join(how))}</div>')
    if copies:
        items = "".join(f'<li data-uri="{escape(c)}"><span class="name" title="{escape(c)}">{escape(short_uri(c))}'
                        f"</span>{' (' + _where(r) + ')' if r is not None else ''} "
                        '<label><input type="checkbox" data-d="keep"> keep</label></li>' for c, r in copies)
        label = f"{len(copies)} byte-identical cop{'y' if len(copies) == 1 else 'ies'}"
        lines.append(f'<details class="copies"{" open" if open_copies else ""}><summary>{label}</summary>'
                     f"<ul>{items}</ul></details>")
    lines.append('<div class="decide"><label><input type="checkbox" data-d="keep"> keep</label>'
                 + (' <label><input type="checkbox" data-d="not_duplicate"> not a duplicate</label>'
                    if not_duplicate else "") + "</div>")
    return (f'<figure class="pic" data-uri="{escape(uri)}"><div class="thumb">{picture}</div>'
            f"<figcaption>{''.join(lines)}</figcaption></figure>")


def _no_thumbnail(record: InventoryRecord | None) -> str:
    """Why a file shows no picture, as far as the catalog tells."""
    if record is None:
        return "not in the catalog"
    if record.phash is None:
        return "no pixels decoded: too small, not an image, an unread tier, or a scan without perceptual hashes"
    return "made when a scan with thumbnails on reads the image"


def _where(record: InventoryRecord) -> str:
    return escape(f"{record.bucket} \u00b7 {record.tier.value} \u00b7 {record.region} \u00b7 {record.jurisdiction}")


GROUPS_CSS = """
.pager{display:flex;gap:8px;align-items:center;margin:8px 0}.pager input{flex:1;padding:4px 8px}
.grp{background:#fff;border:1px solid #dee2e6;border-radius:8px;margin:0 0 12px;padding:8px 12px}
.grp h3{font-size:14px;margin:0 0 8px;display:flex;gap:8px;align-items:baseline}
.grp .rev{margin-left:auto;font-weight:400}
.grp.done{border-color:#2f9e44}.row{display:flex;gap:12px;overflow-x:auto;align-items:flex-start}
.pic{margin:0;width:190px;flex:0 0 190px;font-size:12px}.pic .thumb{height:160px;display:flex;align-items:center;
justify-content:center;background:#f1f3f5;border-radius:4px}.pic img{max-width:160px;max-height:160px}
.noimg{color:#868e96;text-align:center;padding:8px;border:1px dashed #adb5bd;border-radius:4px}
.noimg small{display:block}.pic .role{font-weight:600}.pic .name{word-break:break-all}
.pic .how{color:#5f3dc4}.badge{color:#fff;border-radius:3px;padding:0 4px;margin-right:3px;font-size:11px}
.copies ul{margin:2px 0;padding-left:16px}.copies li{word-break:break-all}
.decisions{position:sticky;bottom:0;background:#fff3bf;padding:8px 12px;border-radius:6px;margin-top:16px;
display:flex;gap:12px;align-items:center}
"""

# Pages the galleries, filters them, shows a placeholder for a picture that did not load, and collects the
# reviewer's marks into the decisions file (`window.tierscanDecisions` gives it; the button downloads it).
# `#all` in the address shows every group with its pictures loaded at once (for printing or checking).
GROUPS_SCRIPT = """
(function () {
  var all = location.hash === "#all";
  function broken(img) {
    var box = document.createElement("div");
    box.className = "noimg";
    box.textContent = "picture not found";
    var small = document.createElement("small");
    small.textContent = "the thumbnails folder is missing beside this page";
    box.appendChild(small);
    img.replaceWith(box);
  }
  document.querySelectorAll(".gallery img").forEach(function (img) {
    if (all) { img.loading = "eager"; }
    if (img.complete && img.naturalWidth === 0) { broken(img); return; }
    img.addEventListener("load", function () { img.dataset.width = String(img.naturalWidth); });
    img.addEventListener("error", function () { broken(img); });
    if (img.complete) { img.dataset.width = String(img.naturalWidth); }
  });
  document.querySelectorAll(".pager").forEach(function (pager) {
    var gallery = document.getElementById(pager.dataset.for), size = all ? 1e9 : +gallery.dataset.page;
    var groups = Array.prototype.slice.call(gallery.querySelectorAll(".grp")), page = 0, shown = groups;
    var input = pager.querySelector("input"), at = pager.querySelector(".at");
    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / size));
      page = Math.min(Math.max(page, 0), pages - 1);
      groups.forEach(function (g) { g.hidden = true; });
      shown.slice(page * size, (page + 1) * size).forEach(function (g) { g.hidden = false; });
      var last = Math.min(shown.length, (page + 1) * size), filtered = shown.length < groups.length;
      at.textContent = shown.length ? "groups " + (page * size + 1) + "-" + last + " of " + shown.length +
        (filtered ? " (filtered from " + groups.length + ")" : "") : "no group";
    }
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
      shown = groups.filter(function (g) {
        return words.every(function (w) { return g.dataset.q.indexOf(w) >= 0 || g.id.indexOf(w) === 0; });
      });
      page = 0;
      draw();
    });
    pager.querySelectorAll("button").forEach(function (b) {
      b.addEventListener("click", function () { page += +b.dataset.step; draw(); });
    });
    draw();
  });
  function decisions() {
    var bar = document.getElementById("decisions"), out = [];
    document.querySelectorAll(".grp").forEach(function (g) {
      var keep = [], apart = [], reviewed = g.querySelector("input[data-d=reviewed]").checked;
      g.querySelectorAll("input[data-d=keep]:checked").forEach(function (box) {
        keep.push(box.closest("[data-uri]").dataset.uri);
      });
      g.querySelectorAll("input[data-d=not_duplicate]:checked").forEach(function (box) {
        apart.push(box.closest("[data-uri]").dataset.uri);
      });
      if (reviewed || keep.length || apart.length) {
        out.push({id: g.dataset.group, kind: g.dataset.kind, centre: g.dataset.centre, keep: keep,
                  not_duplicate: apart});
      }
    });
    return {format: bar.dataset.format, version: 1, report: bar.dataset.report, groups: out};
  }
  window.tierscanDecisions = decisions;
  document.addEventListener("change", function (e) {
    var box = e.target, g = box.closest && box.closest(".grp");
    if (!g || !box.dataset.d) { return; }
    if (box.dataset.d !== "reviewed" && box.checked) { g.querySelector("input[data-d=reviewed]").checked = true; }
    g.classList.toggle("done", g.querySelector("input[data-d=reviewed]").checked);
    var doc = decisions(), files = 0;
    doc.groups.forEach(function (d) { files += d.keep.length + d.not_duplicate.length; });
    document.getElementById("decided").textContent = doc.groups.length + " group(s) reviewed, " + files +
      " file(s) marked.";
  });
  document.getElementById("download-decisions").addEventListener("click", function () {
    var blob = new Blob([JSON.stringify(decisions(), null, 2) + "\\n"], {type: "application/json"});
    var link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = "tierscan-decisions.json";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
})();
"""
