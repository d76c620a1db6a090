"""CSV that people open in a spreadsheet, safe from formula injection (OWASP's CSV-injection rule).

Queries come from anonymous users and titles from sellers; a cell that begins with ``=``, ``+``, ``-``, ``@``, a tab
or a carriage return is run as a formula by Excel, LibreOffice and Google Sheets. Such a text cell is written with a
leading apostrophe, which every spreadsheet shows as text and hides. A text cell that already begins with an
apostrophe gets one more, so :func:`unescape_cell` undoes :func:`escape_cell` exactly when a file comes back (raters'
answers). Numbers stay numbers.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def escape_cell(value: Any) -> Any:
    """A text value a spreadsheet shows as text; other values unchanged."""
    if isinstance(value, str) and value[:1] in (*FORMULA_START, "'"):
        return "'" + value
    return value


def unescape_cell(value: Any) -> Any:
    """The text :func:`escape_cell` was given (one leading apostrophe dropped)."""
    if isinstance(value, str) and value.startswith("'"):
        return value[1:]
    return value


def escape_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Every text cell escaped; numeric columns untouched."""
    out = df.copy()
    for c in out.columns:
        if out[c].dtype == object or pd.api.types.is_string_dtype(out[c]):
            out[c] = out[c].map(escape_cell)
    return out


def write_csv(df: pd.DataFrame, path: str | Path | None = None) -> str | None:
    """``df.to_csv(path, index=False)`` with every text cell escaped and quoted (pandas leaves a bare carriage return
    unquoted, which splits the row for every reader); the text when ``path`` is None."""
    return escape_frame(df).to_csv(path, index=False, quoting=csv.QUOTE_NONNUMERIC)


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """A CSV this project wrote (or a person edited), every column as text, escapes undone."""
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    for c in df.columns:
        df[c] = df[c].map(unescape_cell)
    return df
