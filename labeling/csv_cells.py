"""CSV cells that a spreadsheet shows as text instead of running them as formulas.

A cell starting with =, +, -, @, a tab or a carriage return is a formula to Excel,
LibreOffice and Google Sheets (`=HYPERLINK(...)` in a file name becomes a live link, or
worse), so every CSV the app writes prefixes such a cell with a single quote, as
OWASP's "CSV Injection" advice says. A cell that already starts with a quote followed
by one of those characters (or by another quote) gets one more, so `unescaped` gives
back exactly the text written: the tag import reads its own export unchanged, and a
hand-written cell starting with a quote and anything else is read as it stands.

No Django here: the standalone predictor writes its CSV through this module too.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
QUOTE = "'"


def _needs_quote(text: str) -> bool:
    if text.startswith(FORMULA_STARTS):
        return True
    return text.startswith(QUOTE) and text[1:2] in (*FORMULA_STARTS, QUOTE)


def escaped(value: Any) -> Any:
    """`value` as a cell to write: text that a spreadsheet would run gets a leading
    quote; anything else (numbers, text starting otherwise) is left as it is."""
    if isinstance(value, str) and _needs_quote(value):
        return QUOTE + value
    return value


def unescaped(text: str) -> str:
    """The text `escaped` was given, from the cell it wrote."""
    if text.startswith(QUOTE) and _needs_quote(text[1:]):
        return text[1:]
    return text


class SafeWriter:
    """`csv.writer` whose text cells go through `escaped`."""

    def __init__(self, out: TextIO, **options):
        self._writer = csv.writer(out, **options)

    def writerow(self, row: Iterable[Any]) -> Any:
        return self._writer.writerow([escaped(cell) for cell in row])


def csv_writer(out: TextIO, **options) -> SafeWriter:
    """A CSV writer for files people open in spreadsheets (options as `csv.writer`)."""
    return SafeWriter(out, **options)
