"""Progress on long scans, phase by phase, with true totals where they are known. Silent when stderr is not
a terminal, so pipes, CI logs and tests get clean output.

- "listing" counts objects listed, at objects/s (no total: a listing does not say how long it is).
- "reading" counts objects settled (read, or recorded with the copy that was read) of those planned, with
  ETA, and the bytes read at bytes/s (bytes have no honest total: a ranged read takes a fraction of an
  object). Planned objects grow while the listing goes on and when narrowing plans whole reads; an object
  counts when its result is recorded, so the count never passes its total.
- Grouping and policies are steps ("exact groups", "near groups", ...), each with its count and, where
  the number of items is known beforehand, a bar and an ETA.
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
    TimeRemainingColumn,
)
from rich.text import Text

from tierscan.scanner.core.units import human_bytes

__all__ = ["Progress", "RichProgress"]


class Progress:
    """The callbacks a scan makes. This base class ignores them."""

    def listed(self, n: int) -> None: ...

    def listing_done(self) -> None: ...

    def planned(self, objects: int) -> None:
        """More objects to read (reads start while listing goes on, so the total grows)."""

    def settled(self, objects: int) -> None:
        """Results recorded for `objects` planned objects (read, failed, or a copy of one read)."""

    def read(self, n_bytes: int) -> None:
        """One request's bytes."""

    def step(self, name: str, total: int | None = None) -> None:
        """A new step after the reads (ends the one before); `total` when the number of items is known."""

    def advance(self, n: int = 1) -> None:
        """Items done in the current step."""

    def done(self) -> None: ...


def _rate(task: Task, done: float) -> float:
    """Per second: rich's recent speed, else the average since the task started (a few large advances
    give rich too few samples, and it would show 0)."""
    speed = task.finished_speed or task.speed
    if speed:
        return speed
    elapsed = task.finished_time or task.elapsed
    return done / elapsed if elapsed else 0.0


class _CountsColumn(ProgressColumn):
    """What is done (of the total, where known), then the rate."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "objects")
        done = int(task.completed)
        if unit == "items" and not done and not task.total:
            return Text("")  # a step that counts nothing (building an index): its name and time say it
        counted = f"{done:,}/{int(task.total):,}" if task.total is not None else f"{done:,}"
        text = f"{counted} {unit}  {_rate(task, task.completed):,.0f} {unit}/s"
        if task.fields.get("kind") == "read":
            read = task.fields.get("bytes", 0)
            text += f"  {human_bytes(read)}  {human_bytes(int(_rate(task, read)) if task.completed else 0)}/s"
        return Text(text, style="progress.download")


class RichProgress(Progress):
    """Rich progress bars on stderr, shown only on a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal and sys.stderr.isatty()
        self._bars = _Bars(
            TextColumn("{task.description:<15}"), BarColumn(bar_width=24), _CountsColumn(), TimeElapsedColumn(),
            TextColumn("ETA"), TimeRemainingColumn(), console=self.console, transient=True,
        )
        self._listing: TaskID | None = None
        self._reading: TaskID | None = None
        self._step: TaskID | None = None

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bars.stop()

    def listed(self, n: int) -> None:
        if not self.enabled:
            return
        if self._listing is None:
            self._listing = self._bars.add_task("listing", total=None)
        self._bars.advance(self._listing, n)

    def listing_done(self) -> None:
        if self._listing is not None:  # its bar stops counting time
            self._bars.update(self._listing, total=self._bars.tasks[self._listing].completed)

    def planned(self, objects: int) -> None:
        if not self.enabled:
            return
        if self._reading is None:
            self._reading = self._bars.add_task("reading", total=objects, kind="read", bytes=0)
            return
        self._bars.update(self._reading, total=(self._bars.tasks[self._reading].total or 0) + objects)

    def settled(self, objects: int) -> None:
        if self._reading is not None:
            self._bars.advance(self._reading, objects)

    def read(self, n_bytes: int) -> None:
        if self._reading is not None:
            task = self._bars.tasks[self._reading]
            self._bars.update(self._reading, bytes=task.fields["bytes"] + n_bytes)

    def step(self, name: str, total: int | None = None) -> None:
        if not self.enabled:
            return
        self._end_step()
        # A step without a known total shows its count and a pulsing bar until it ends.
        self._step = self._bars.add_task(name, total=total, unit="items")

    def advance(self, n: int = 1) -> None:
        if self._step is not None:
            self._bars.advance(self._step, n)

    def done(self) -> None:
        self._end_step()

    def _end_step(self) -> None:
        if self._step is not None:
            task = self._bars.tasks[self._step]
            self._bars.update(self._step, total=task.completed)
            self._bars.stop_task(self._step)
            self._step = None
