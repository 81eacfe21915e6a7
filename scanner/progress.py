"""Progress on long scans: objects listed, objects and bytes read, with rates. Silent when stderr is not a
terminal, so pipes, CI logs and tests get clean output."""

from __future__ import annotations

import sys

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress as _Bars,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TransferSpeedColumn,
)

__all__ = ["Progress", "RichProgress"]


class Progress:
    """The callbacks a scan makes. This base class ignores them."""

    def listed(self, n: int) -> None: ...

    def planned(self, objects: int, size: int) -> None: ...

    def read(self, n_bytes: int) -> None: ...

    def done(self) -> None: ...


class RichProgress(Progress):
    """Rich progress bars on stderr, shown only on a terminal."""

    def __init__(self, console: Console | None = None):
        self.console = console or Console(stderr=True)
        self.enabled = self.console.is_terminal and sys.stderr.isatty()
        self._bars = _Bars(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), DownloadColumn(),
            TransferSpeedColumn(), TimeElapsedColumn(), console=self.console, transient=True,
        )
        self._listing: TaskID | None = None
        self._reading: TaskID | None = None

    def __enter__(self) -> RichProgress:
        if self.enabled:
            self._bars.start()
            self._listing = self._bars.add_task("listing", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.enabled:
            self._bars.stop()

    def listed(self, n: int) -> None:
        if self._listing is not None:
            self._bars.advance(self._listing, n)

    def planned(self, objects: int, size: int) -> None:
        if self.enabled:
            self._reading = self._bars.add_task("reading", total=size)

    def read(self, n_bytes: int) -> None:
        if self._reading is not None:
            self._bars.advance(self._reading, n_bytes)
