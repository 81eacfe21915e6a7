"""Untrusted text (object keys, bucket names, metadata, error messages quoting them) made safe for the two
places it is read by something that interprets it: a terminal and a spreadsheet.

Terminal: every character Python does not call printable (C0 and C1 controls such as ESC, BEL, backspace
and carriage return, DEL, bidi overrides such as U+202E and other format characters, line and paragraph
separators, lone surrogates) is shown as a visible escape (`\\x1b`, `\\u202e`), so no escape sequence,
OSC 8 hyperlink or reordering reaches the terminal and a reader can tell the name was odd. Rich renders
`terminal_text` as plain text: no markup (`[/x]`, `[link=...]`) or emoji codes are interpreted.

Spreadsheet: OWASP's "CSV Injection" advice. A text cell beginning with `=`, `+`, `-`, `@`, tab or carriage
return is prefixed with a single quote so spreadsheets read it as text, not a formula; numbers (a negative
longitude or saving) are not text and stay numbers. The csv module's quoting still applies, and a row with a
carriage return inside a cell is quoted whole: with a "\n" line terminator the csv module leaves a lone CR
unquoted, and a spreadsheet would start a new row (and a new, unneutralised cell) there.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import IO

from rich.text import Text

__all__ = ["CsvWriter", "csv_safe", "terminal_safe", "terminal_text"]

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _visible(ch: str) -> str:
    n = ord(ch)
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


def terminal_safe(text: str, *, keep_newlines: bool = False) -> str:
    """`text` with every non-printable character shown as an escape; `keep_newlines` keeps line breaks
    of a multi-line message (the lines themselves are escaped)."""
    if keep_newlines:
        return "\n".join(terminal_safe(line) for line in text.split("\n"))
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _visible(ch) for ch in text)


def terminal_text(text: str) -> Text:
    """`terminal_safe(text)` as a rich Text, which rich prints literally (no markup, no emoji codes)."""
    return Text(terminal_safe(text))


def csv_safe(value: object) -> object:
    """A CSV cell: text that a spreadsheet would run as a formula gets a leading `'`; None becomes an
    empty cell; anything else (numbers, booleans) is returned as is."""
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value


class CsvWriter:
    """csv.writer ("\n" line ends) for rows holding untrusted text: every cell goes through `csv_safe`."""

    def __init__(self, fh: IO[str]):
        self._minimal = csv.writer(fh, lineterminator="\n")
        self._all = csv.writer(fh, lineterminator="\n", quoting=csv.QUOTE_ALL)

    def writerow(self, row: Iterable[object]) -> None:
        cells = [csv_safe(value) for value in row]
        carriage_return = any(isinstance(cell, str) and "\r" in cell for cell in cells)
        (self._all if carriage_return else self._minimal).writerow(cells)
