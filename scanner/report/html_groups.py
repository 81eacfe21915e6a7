"""The HTML report's pictures: every near-duplicate group as a row of thumbnails, centre first, each with
where it is stored, its size and dimensions, how it differs from the centre and its personal-data badges;
every exact group with its master's thumbnail and each copy's location. A reviewer marks files "keep" and
near members "not a duplicate" and downloads the decisions as a file (`tierscan.scanner.core.decisions`)
that `tierscan near ignore --decisions` and `tierscan apply --decisions` read back; the page needs no
server (a Blob download works from file://).

Scale: each gallery's groups go into the page as JSON (about a kilobyte a group), from which the page's
script builds `PAGE` groups at a time, with a filter box over every field, so the page holds a few hundred
elements however many groups there are; images load lazily. Thumbnails are files in a folder beside the
page (`<name>_files/`, one file per distinct picture) when the page is written to a file, and inline data
URIs when it goes to standard output.

What "how it differs" can say comes from what the catalog keeps of each file (format, dimensions, size,
metadata, the mirror image's pHash in the signature, the thumbnail): re-encoded, resized, cropped or
reshaped, rotated, flipped, made grey (or colour added), metadata removed. The verifier's own evidence is
not stored, so other colour changes are matched but not named.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from html import escape
from pathlib import Path
from urllib.parse import quote

from PIL import Image, ImageStat

from tierscan.scanner.core.decisions import DECISIONS_FORMAT
from tierscan.scanner.core.errors import UsageError
from tierscan.scanner.core.models import Group, InventoryRecord
from tierscan.scanner.core.units import human_bytes
from tierscan.scanner.report.build import short_uri
from tierscan.scanner.scan.catalog import Catalog

__all__ = ["GROUPS_CSS", "GROUPS_SCRIPT", "PAGE", "Pictures", "how_it_differs", "picture_sections"]

PAGE = 50  # groups shown at a time
_MARK = ".tierscan-thumbnails"  # marks a thumbnails folder as a report's
_SAME_ASPECT = 0.02  # relative aspect-ratio difference under which a size change is a resize
_FLIP_MARGIN = 8  # bits by which the mirror's pHash must be nearer than the centre's own to call a flip
_GREY_SATURATION = 8  # mean HSV saturation (of 255) under which a thumbnail counts as grey


class Pictures:
    """Where the picture sections find thumbnails and records (the catalog), and where the thumbnails go:
    files in `folder` (linked as `href`, its name beside the page), or inline when `folder` is None."""

    def __init__(self, catalog: Catalog, folder: Path | None = None, href: str | None = None):
        self.catalog = catalog
        self.folder = folder
        self.href = href or (folder.name if folder is not None else "")  # the folder's name beside the page

    @classmethod
    @contextmanager
    def beside(cls, catalog: Catalog, page: Path) -> Iterator[Pictures]:
        """Thumbnails for a page written to `page`, in `<page name>_files/` beside it. They are written to a
        new folder that replaces the earlier one only when the body of the `with` (which writes the page)
        succeeds; otherwise it is removed and the earlier folder stays. A folder of that name without the
        report's mark (`_MARK`) that holds files is someone else's: refused, never written into or
        replaced."""
        final = page.with_name(f"{page.stem}_files")
        if final.is_dir() and not (final / _MARK).exists() and any(final.iterdir()):
            raise UsageError(f"{final} exists and is not a tierscan report's thumbnails folder: name another "
                             "--output, or move that folder")
        if final.exists() and not final.is_dir():
            raise UsageError(f"{final} exists and is not a folder: name another --output, or move it")
        fresh = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=final.parent))
        try:
            (fresh / _MARK).write_text("Thumbnails of the tierscan report beside this folder; the next report "
                                       "replaces them.\n")
            yield cls(catalog, fresh, final.name)
        except BaseException:
            shutil.rmtree(fresh, ignore_errors=True)
            raise
        old = final.with_name(f"{fresh.name}.old")
        if final.exists():
            final.rename(old)
        fresh.chmod(0o755)
        fresh.rename(final)
        shutil.rmtree(old, ignore_errors=True)

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
        return f"{quote(self.href)}/{name}"

    def grey(self, uris: Sequence[str]) -> bool | None:
        """Whether the thumbnail of the first of `uris` that has one shows a grey picture (None: none has)."""
        data = self.catalog.thumbnail(uris)
        if data is None:
            return None
        with Image.open(io.BytesIO(data)) as img:
            saturation = img.convert("RGB").convert("HSV").getchannel("S")
            return bool(ImageStat.Stat(saturation).mean[0] < _GREY_SATURATION)


def how_it_differs(centre: InventoryRecord | None, member: InventoryRecord | None,
                   centre_mirror: int | None = None, grey: tuple[bool, bool] | None = None) -> list[str]:
    """How a near member differs from its group's centre, in words, from what the catalog keeps of both:
    their records, the pHash of the centre's mirror image (`centre_mirror`: a flipped copy's pHash is near
    it, far from the centre's own) and whether each thumbnail is grey (`grey`: centre, member)."""
    if centre is None or member is None:
        return []
    found: list[str] = []
    if centre_mirror is not None and centre.phash and member.phash:
        own = int.bit_count(int(centre.phash, 16) ^ int(member.phash, 16))
        if int.bit_count(centre_mirror ^ int(member.phash, 16)) + _FLIP_MARGIN <= own:
            found.append("flipped (mirror image)")
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
    if grey == (False, True):
        found.append("made grey")
    elif grey == (True, False):
        found.append("colour added")
    # Faces are in the pixels: a copy where fewer are found lost no metadata.
    lost = [k for k in centre.personal_data if k not in member.personal_data and k != "faces"]
    if lost:
        found.append(f"metadata removed ({', '.join(lost)})")
    return found


def picture_sections(groups: Callable[[], Iterable[Group]], pictures: Pictures, report_time: str
                     ) -> Iterator[str]:
    """The near-duplicate section, then the exact groups' pictures, then the decisions bar. Each gallery's
    groups go into the page as JSON (`_group_data`, one group at a time, as `groups` streams them: it is
    read once per gallery), which the page's script shows a page at a time."""
    yield ('<h2 id="near">Near-duplicate groups to review</h2>'
           '<p class="caveat">Each thumbnail is a small copy of the image it shows, personal images included; '
           "keep this report as carefully as the images. A scan makes none with "
           "<code>tierscan scan --no-thumbnails</code> or <code>scan: {thumbnails: false}</code> in the config, "
           "and then deletes those the catalog holds.</p>"
           '<p class="muted">Centre first (the copy to keep); each other picture says how it differs from the '
           "centre where the catalog can tell (colour changes other than to grey are matched but not named). Mark "
           "files "
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
           f'data-step="1">Next &rsaquo;</button></div><div id="{kind}-groups" class="gallery" data-page="{PAGE}">'
           '<noscript><p class="caveat">The pictures are shown by the page\'s script: allow it to see them.</p>'
           f'</noscript></div><script type="application/json" id="{kind}-groups-data">[')
    separator = ""
    for group in groups:
        yield separator + _script_safe(json.dumps(_group_data(group, pictures), ensure_ascii=False,
                                                  separators=(",", ":")))
        separator = ","
    yield "]</script>"


def _script_safe(text: str) -> str:
    """JSON that cannot end its <script> element or open a comment there."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _group_data(group: Group, pictures: Pictures) -> dict[str, object]:
    """What the page shows of a group: id, kind, centre, a summary line, and its pictures (`_picture`);
    a near group's pictures are its members, an exact group's one picture is its master's, with every
    other copy listed under it."""
    copies = group.copies if group.kind == "near" else {
        group.master: [m.uri for m in group.members if m.uri != group.master]}
    shown = [m for m in group.members if group.kind == "near" or m.uri == group.master]
    records = pictures.catalog.records_of(
        [*(m.uri for m in shown), *(c for uris in copies.values() for c in uris)])
    centre = records.get(group.master)
    mirror = pictures.catalog.mirror_phash(group.master) if group.kind == "near" else None
    files = len(group.members) + sum(len(c) for c in group.copies.values())
    spans = [name for name, on in (("tiers", group.spans_tiers), ("regions", group.spans_regions),
                                   ("jurisdictions", group.spans_jurisdictions)) if on]
    summary = (f"{len(group.members)} pictures, {files} files" if group.kind == "near"
               else f"{len(group.members)} byte-identical copies")
    summary += (f"; spans {', '.join(spans)}" if spans else "") + ("; personal data" if group.has_personal_data else "")
    pictures_data = []
    for member in shown:
        is_centre = member.uri == group.master
        role = ("master (kept)" if group.kind == "exact" else "centre") if is_centre \
            else f"pHash distance {member.distance}"
        how = [] if is_centre else how_it_differs(centre, records.get(member.uri), mirror,
                                                  _greys(pictures, group, member.uri, centre, records, copies))
        pictures_data.append(_picture(member.uri, records.get(member.uri), role, how,
                                      pictures.src([member.uri, *copies.get(member.uri, [])]),
                                      [(c, records.get(c)) for c in copies.get(member.uri, [])]))
    return {"id": group.id, "kind": group.kind, "centre": group.master, "summary": summary, "pictures": pictures_data}


def _greys(pictures: Pictures, group: Group, uri: str, centre: InventoryRecord | None,
           records: dict[str, InventoryRecord], copies: dict[str, list[str]]) -> tuple[bool, bool] | None:
    """Whether the centre's and the member's thumbnails are grey, looked at only where the two have the
    same dimensions (a recolour keeps them; decoding every thumbnail would cost the report more than the
    rest of it)."""
    member = records.get(uri)
    if centre is None or member is None or (centre.width, centre.height) != (member.width, member.height):
        return None
    grey = (pictures.grey([group.master, *copies.get(group.master, [])]), pictures.grey([uri, *copies.get(uri, [])]))
    return None if grey[0] is None or grey[1] is None else (grey[0], grey[1])


def _picture(uri: str, record: InventoryRecord | None, role: str, how: list[str], src: str | None,
             copies: list[tuple[str, InventoryRecord | None]]) -> dict[str, object]:
    """One picture: URI (and the name shown, when shorter), role, where it is stored, size and dimensions,
    how it differs, personal-data kinds, its image source (or why there is none), and its byte-identical
    copies (URI, where, name shown)."""
    found: dict[str, object] = {"uri": uri, "role": role}
    if (name := short_uri(uri)) != uri:  # a local file: its path below the working folder
        found["name"] = name
    if record is not None:
        found["where"] = _where(record)
        shape = f"{record.width}\u00d7{record.height} " if record.width and record.height else ""
        found["size"] = f"{human_bytes(record.size)}; {shape}{record.format or ''}".strip().rstrip(";")
        if record.personal_data:
            found["kinds"] = record.personal_data
    if how:
        found["how"] = "; ".join(how)
    if src is not None:
        found["src"] = src
    else:
        found["none"] = _no_thumbnail(record)
    if copies:
        found["copies"] = [[c, _where(r) if r is not None else "", short_uri(c)] for c, r in copies]
    return found


def _no_thumbnail(record: InventoryRecord | None) -> str:
    """Why a file shows no picture, as far as the catalog tells."""
    if record is None:
        return "not in the catalog"
    if record.phash is None:
        return "no pixels decoded: too small, not an image, an unread tier, or a scan without perceptual hashes"
    return "made when a scan with thumbnails on reads the image"


def _where(record: InventoryRecord) -> str:
    return f"{record.bucket} \u00b7 {record.tier.value} \u00b7 {record.region} \u00b7 {record.jurisdiction}"


GROUPS_CSS = """
.pager{display:flex;gap:8px;align-items:center;margin:8px 0}.pager input{flex:1;padding:4px 8px}
.grp{background:#fff;border:1px solid #dee2e6;border-radius:8px;margin:0 0 12px;padding:8px 12px}
.grp h3{font-size:14px;margin:0 0 8px;display:flex;gap:8px;align-items:baseline}
.grp .rev{margin-left:auto;font-weight:400}
.grp.done{border-color:#2f9e44}.row{display:flex;gap:12px;overflow-x:auto;align-items:flex-start}
.pic{margin:0;width:190px;flex:0 0 190px;font-size:12px}.pic .thumb{height:160px;display:flex;align-items:center;
justify-content:center;background:#f1f3f5;border-radius:4px}.pic img{max-width:160px;max-height:160px}
.noimg{color:#868e96;text-align:center;padding:8px;border:1px dashed #adb5bd;border-radius:4px}
.noimg small{display:block}.pic figcaption{font-weight:400;margin:4px 0 0}.pic .role{font-weight:600}
.pic .name{word-break:break-all}.pic .how{color:#5f3dc4}
.badge{color:#fff;border-radius:3px;padding:0 4px;margin-right:3px;font-size:11px;background:#495057}
.b-gps{background:#c92a2a}.b-serial{background:#5f3dc4}.b-owner{background:#2f9e44}.b-timestamp{background:#1c7ed6}
.b-people{background:#d6336c}.b-caption{background:#e67700}.b-place{background:#0c8599}
.copies ul{margin:2px 0;padding-left:16px}.copies li{word-break:break-all}
.grp[data-kind=exact] .pic{flex:1 1 auto;width:auto}.grp[data-kind=exact] .pic .thumb{width:190px}
.decisions{position:sticky;bottom:0;background:#fff3bf;padding:8px 12px;border-radius:6px;margin-top:16px;
display:flex;gap:12px;align-items:center}
"""

# Shows each gallery's groups (the JSON beside it) a page at a time, with a filter over every field; builds
# every element with textContent, never markup, so a hostile key stays text. Pictures that fail to load
# show a placeholder. The reviewer's marks live in `state` (they survive paging and filtering) and become
# the decisions file (`window.tierscanDecisions` gives it; the button downloads it). `#all` in the address
# shows every group with its pictures loaded at once (for printing or checking); `data-pictures-ms` on the
# body says when the galleries were drawn (ms after navigation began).
GROUPS_SCRIPT = """
(function () {
  var all = location.hash === "#all", bar = document.getElementById("decisions"), state = {}, byId = {};
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined) { e.textContent = text; }
    return e;
  }
  function noimg(text, detail) {
    var box = el("div", "noimg", text);
    box.appendChild(el("small", "", detail));
    return box;
  }
  function marks(id) {
    return state[id] || (state[id] = {reviewed: false, keep: {}, not_duplicate: {}});
  }
  function mark(group, section, what, uri, words) {
    var box = el("input"), label = el("label"), s = state[group.id];
    box.type = "checkbox";
    box.dataset.d = what;
    box.checked = !!s && (what === "reviewed" ? s.reviewed : !!s[what][uri]);
    box.addEventListener("change", function () {
      var m = marks(group.id);
      if (what === "reviewed") {
        m.reviewed = box.checked;
      } else if (box.checked) {
        m[what][uri] = true;
        m.reviewed = true;
        section.querySelector("h3 input").checked = true;
      } else {
        delete m[what][uri];
      }
      section.classList.toggle("done", m.reviewed);
      counted();
    });
    label.appendChild(box);
    label.appendChild(document.createTextNode(" " + words));
    return label;
  }
  function picture(group, p, section) {
    var fig = el("figure", "pic"), thumb = el("div", "thumb"), cap = el("figcaption");
    fig.dataset.uri = p.uri;
    if (p.src) {
      var img = el("img");
      img.alt = "thumbnail";
      img.loading = all ? "eager" : "lazy";
      img.addEventListener("load", function () { img.dataset.width = String(img.naturalWidth); });
      img.addEventListener("error", function () {
        img.replaceWith(noimg("picture not found", "the thumbnails folder is missing beside this page"));
      });
      img.src = p.src;
      thumb.appendChild(img);
    } else {
      thumb.appendChild(noimg("no thumbnail", p.none));
    }
    fig.appendChild(thumb);
    cap.appendChild(el("div", "role", p.role));
    var name = el("div", "name", p.name || p.uri);
    name.title = p.uri;
    cap.appendChild(name);
    if (p.where) { cap.appendChild(el("div", "", p.where)); }
    if (p.size) { cap.appendChild(el("div", "", p.size)); }
    if (p.kinds) {
      var badges = el("div", "badges");
      p.kinds.forEach(function (k) { badges.appendChild(el("span", "badge b-" + k, k)); });
      cap.appendChild(badges);
    }
    if (p.how) { cap.appendChild(el("div", "how", p.how)); }
    if (p.copies) {
      var details = el("details", "copies"), list = el("ul"), n = p.copies.length;
      details.open = group.kind === "exact";
      details.appendChild(el("summary", "", n + " byte-identical cop" + (n === 1 ? "y" : "ies")));
      p.copies.forEach(function (c) {
        var item = el("li");
        item.dataset.uri = c[0];
        var copy = el("span", "name", c[2]);
        copy.title = c[0];
        item.appendChild(copy);
        item.appendChild(document.createTextNode(c[1] ? " (" + c[1] + ") " : " "));
        item.appendChild(mark(group, section, "keep", c[0], "keep"));
        list.appendChild(item);
      });
      details.appendChild(list);
      cap.appendChild(details);
    }
    var decide = el("div", "decide");
    decide.appendChild(mark(group, section, "keep", p.uri, "keep"));
    if (group.kind === "near" && p.uri !== group.centre) {
      decide.appendChild(document.createTextNode(" "));
      decide.appendChild(mark(group, section, "not_duplicate", p.uri, "not a duplicate"));
    }
    cap.appendChild(decide);
    fig.appendChild(cap);
    return fig;
  }
  function render(group) {
    var section = el("section", "grp"), head = el("h3", "", group.id + " "), row = el("div", "row");
    section.id = group.id;
    section.dataset.group = group.id;
    section.dataset.kind = group.kind;
    head.appendChild(el("span", "muted", group.summary));
    var reviewed = mark(group, section, "reviewed", null, "reviewed");
    reviewed.className = "rev";
    head.appendChild(reviewed);
    section.appendChild(head);
    group.pictures.forEach(function (p) { row.appendChild(picture(group, p, section)); });
    section.appendChild(row);
    section.classList.toggle("done", !!state[group.id] && state[group.id].reviewed);
    return section;
  }
  document.querySelectorAll(".pager").forEach(function (pager) {
    var gallery = document.getElementById(pager.dataset.for);
    var groups = JSON.parse(document.getElementById(pager.dataset.for + "-data").textContent);
    var size = all ? Math.max(1, groups.length) : +gallery.dataset.page, page = 0, shown = groups, texts = null;
    var input = pager.querySelector("input"), at = pager.querySelector(".at");
    groups.forEach(function (g) { byId[g.id] = g; });
    function draw() {
      var pages = Math.max(1, Math.ceil(shown.length / size));
      page = Math.min(Math.max(page, 0), pages - 1);
      var first = page * size, last = Math.min(shown.length, first + size);
      gallery.textContent = "";
      shown.slice(first, last).forEach(function (g) { gallery.appendChild(render(g)); });
      if (!groups.length) { gallery.appendChild(el("p", "muted", "No groups.")); }
      at.textContent = shown.length ? "groups " + (first + 1) + "-" + last + " of " + shown.length +
        (shown.length < groups.length ? " (filtered from " + groups.length + ")" : "") : "no group";
    }
    input.addEventListener("input", function () {
      var words = input.value.toLowerCase().split(/\\s+/).filter(Boolean);
      texts = texts || groups.map(function (g) { return JSON.stringify(g).toLowerCase(); });
      shown = groups.filter(function (g, i) {
        return words.every(function (w) { return texts[i].indexOf(w) >= 0; });
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
    var out = [];
    Object.keys(state).forEach(function (id) {
      var m = state[id], keep = Object.keys(m.keep), apart = Object.keys(m.not_duplicate);
      if (m.reviewed || keep.length || apart.length) {
        out.push({id: id, kind: byId[id].kind, centre: byId[id].centre, keep: keep, not_duplicate: apart});
      }
    });
    return {format: bar.dataset.format, version: 1, report: bar.dataset.report, groups: out};
  }
  function counted() {
    var doc = decisions(), files = 0;
    doc.groups.forEach(function (d) { files += d.keep.length + d.not_duplicate.length; });
    document.getElementById("decided").textContent = doc.groups.length + " group(s) reviewed, " + files +
      " file(s) marked.";
  }
  window.tierscanDecisions = decisions;
  document.getElementById("download-decisions").addEventListener("click", function () {
    var blob = new Blob([JSON.stringify(decisions(), null, 2) + "\\n"], {type: "application/json"});
    var link = el("a");
    link.href = URL.createObjectURL(blob);
    link.download = "tierscan-decisions.json";
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(function () { URL.revokeObjectURL(link.href); }, 1000);
  });
  document.body.dataset.picturesMs = String(Math.round(performance.now()));
})();
"""
