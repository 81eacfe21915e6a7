"""Progress on long scans: objects listed, objects and bytes read, with rates. Silent when stderr is not a
terminal, so pipes, CI logs and tests get clean output.

Two bars: "listing" counts objects (its total is unknown until every listing ends) at objects/s;
"reading" counts objects read of those planned and bytes read of the bytes planned, at bytes/s.
"""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress as _Bars,
    ProgressColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

__all__ = ["Progress", "RichProgress"]


class Progress:
    """The callbacks a scan makes. This base class ignores them."""

    def listed(self, n: int) -> None: ...

    def listing_done(self) -> None: ...

    def planned(self, objects: int, size: int) -> None:
        """More objects to read (reads start while listing goes on, so totals grow)."""

    def read(self, n_bytes: int) -> None: ...

    def done(self) -> None: ...


def _binary(n: float) -> str:
    """Bytes in binary units, as the report prints them (1.5 GiB)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


class _CountsColumn(ProgressColumn):
    """Objects (and, for reading, bytes) done of the total, then the rate."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed or 0.0
        if task.fields.get("kind") == "read":
            total = task.fields.get("objects_total", 0)
            objects = task.fields.get("objects", 0)
            text = (
                f"{objects:,}/{total:,} objects  {_binary(task.completed)}/{_binary(task.total or 0)}"
                f"  {_binary(speed)}/s"
            )
        else:
            text = f"{int(task.completed):,} objects  {speed:,.0f} objects/s"
        return Text(text, style="progress.download")


class RichProgress(Progress):
    """Rich progress bars on stderr, shown only on a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal and sys.stderr.isatty()
        self._bars = _Bars(
            TextColumn("{task.description:<8}"), BarColumn(), _CountsColumn(), TimeElapsedColumn(),
            console=self.console, transient=True,
        )
        self._listing: TaskID | None = None
        self._reading: TaskID | None = None

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._bars.start()
            self._listing = self._bars.add_task("listing", total=None, kind="list")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bars.stop()

    def listed(self, n: int) -> None:
        if self._listing is not None:
            self._bars.advance(self._listing, n)

    def listing_done(self) -> None:
        if self._listing is not None:  # its bar stops counting time
            self._bars.update(self._listing, total=self._bars.tasks[self._listing].completed)

    def planned(self, objects: int, size: int) -> None:
        if not self.enabled:
            return
        if self._reading is None:
            self._reading = self._bars.add_task(
                "reading", total=size, kind="read", objects=0, objects_total=objects
            )
            return
        task = self._bars.tasks[self._reading]
        self._bars.update(self._reading, total=(task.total or 0) + size,
                          objects_total=task.fields["objects_total"] + objects)

    def read(self, n_bytes: int) -> None:
        """One object read, of `n_bytes` bytes."""
        if self._reading is not None:
            task = self._bars.tasks[self._reading]
            self._bars.update(self._reading, advance=n_bytes, objects=task.fields["objects"] + 1)
