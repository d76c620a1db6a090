"""The one clean-up every source's text gets on load (the built-in readers and a team's own files alike)."""

from __future__ import annotations

import re
import unicodedata

_EXCEL = re.compile(r"_x[0-9A-Fa-f]{4}_")  # Excel's escaped control characters, e.g. _x000D_ for a carriage return
_WS = re.compile(r"\s+")


def clean_text(value: object) -> str:
    """Text without Excel artefacts (``_x000D_``), control characters or runs of whitespace."""
    s = _EXCEL.sub(" ", str(value))
    s = "".join(" " if unicodedata.category(ch) == "Cc" or ch in "\u2028\u2029" else ch for ch in s)
    return _WS.sub(" ", s).strip()
