"""A team's own judged set in one file, with only the columns a team has.

Required: ``query``, ``product_id``, ``title``, ``label``. Optional: ``query_id``, ``category``, ``brand``,
``price``, ``attributes`` (a JSON object or a mapping), ``description``. The bookkeeping columns of the two input
contracts (``raw_label``, ``label_source``, ``source``, query ids) are filled in here; every problem in the file
is reported at once, each with its row number (the data row, 1-based, as a spreadsheet shows it after the header).
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import pandas as pd

from taosr1.errors import InputError
from taosr1.labels import from_esci, from_rating_1_4, from_three_level
from taosr1.text import clean_text

Scale = Literal["1-4", "1-3", "esci"]
REQUIRED = ("query", "product_id", "title", "label")
OPTIONAL = ("query_id", "category", "brand", "price", "attributes", "description")
SCALES: dict[str, Callable[[object], int]] = {
    "1-4": lambda v: from_rating_1_4(_int(v)), "1-3": lambda v: from_three_level(_int(v)), "esci": from_esci}
MAX_PROBLEMS = 20
CAPS = {"query": 500, "title": 1_000, "category": 500, "brand": 200, "description": 20_000}  # characters
ID_COLUMNS = ("product_id", "query_id")
_CONTROL = {*range(0x00, 0x20), 0x7F}


def _int(v: object) -> int:
    f = float(str(v).strip())
    if not f.is_integer():
        raise ValueError(f"rating must be a whole number, got {v!r}")
    return int(f)


def read_table(path: str) -> pd.DataFrame:
    """CSV, JSON Lines or Parquet, by extension; every column read as given (CSV: as text)."""
    p = Path(path)
    if not p.exists():
        raise InputError(f"{path}: no such file")
    suffix = p.suffix.lower()
    try:
        if suffix == ".csv":
            # the Python parser: the C one ends a field at a NUL byte, so distinct ids would collapse unseen; long
            # fields are read whole so the caps below can report them
            csv.field_size_limit(max(csv.field_size_limit(), 1 << 28))
            return pd.read_csv(p, dtype=str, keep_default_na=False, na_values=[""], engine="python")
        if suffix in (".jsonl", ".ndjson"):
            return pd.read_json(p, lines=True, dtype=False)
        if suffix == ".parquet":
            return pd.read_parquet(p)
    except (ValueError, OSError) as e:
        raise InputError(f"{path}: cannot be read as {suffix[1:]}: {e}") from None
    raise InputError(f"{path}: use .csv, .jsonl or .parquet")


def _blank(v: object) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v)) or (isinstance(v, str) and not v.strip())


def _attributes(v: object) -> dict[str, str] | None:
    if _blank(v):
        return None
    if isinstance(v, str):
        v = json.loads(v)
    if hasattr(v, "items"):
        return {str(k): str(x) for k, x in v.items()}
    if isinstance(v, list) and all(isinstance(x, (list, tuple)) and len(x) == 2 for x in v):
        return {str(k): str(x) for k, x in v}
    raise ValueError("attributes must be a JSON object of name: value")


def query_id_of(query: str) -> str:
    """A stable id for a query text (lower-cased, whitespace collapsed), where the file has none."""
    key = " ".join(query.lower().split())
    return "uq-" + hashlib.sha1(key.encode()).hexdigest()[:12]


def user_set(path: str, name: str, scale: Scale = "1-4") -> tuple[pd.DataFrame, pd.DataFrame]:
    """(products, labels) in the input contracts from one file of a team's judgments; an :class:`InputError`
    lists every problem (up to 20, then a count) with its row number."""
    raw = read_table(path)
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)} (needed: {', '.join(REQUIRED)}; optional: "
                         f"{', '.join(OPTIONAL)})")
    unknown = [c for c in raw.columns if c not in REQUIRED + OPTIONAL]
    to_level = SCALES[scale]
    problems: list[str] = []
    products: dict[str, dict] = {}
    labels: list[dict] = []
    first_row: dict[tuple[str, str], tuple[int, int]] = {}  # pair -> (row, level) of its first label
    for i, rec in enumerate(raw.to_dict("records"), start=1):
        row_problems = [f"row {i}: {c} is empty" for c in REQUIRED if _blank(rec.get(c))]
        for c in ID_COLUMNS:
            v = rec.get(c)
            bad = next((ch for ch in str(v) if ord(ch) in _CONTROL), None) if not _blank(v) else None
            if bad is not None:
                row_problems.append(f"row {i}: {c} {str(v)[:40]!r} contains the control character "
                                    f"U+{ord(bad):04X} (ids are printable text)")
        for c, cap in CAPS.items():
            v = rec.get(c)
            if isinstance(v, str) and len(v) > cap:
                row_problems.append(f"row {i}: {c} is {len(v):,} characters; the cap is {cap:,}")
        level = price = attrs = None
        if not _blank(rec.get("label")):
            try:
                level = to_level(rec["label"])
            except (ValueError, TypeError) as e:
                row_problems.append(f"row {i}: label {str(rec['label'])[:20]!r} is not on the {scale} scale ({e})")
        if not _blank(rec.get("price")):
            try:
                price = float(rec["price"])
                if not math.isfinite(price) or price < 0:
                    raise ValueError
            except (ValueError, TypeError):
                row_problems.append(f"row {i}: price {str(rec['price'])[:20]!r} is not a non-negative number")
        try:
            attrs = _attributes(rec.get("attributes"))
        except (ValueError, TypeError) as e:
            row_problems.append(f"row {i}: attributes: {e}")
        if row_problems:
            problems += row_problems
            continue
        query, pid = clean_text(rec["query"]), str(rec["product_id"]).strip()
        product = {"product_id": pid, "title": clean_text(rec["title"]),
                   "category": None if _blank(rec.get("category")) else clean_text(rec["category"]),
                   "brand": None if _blank(rec.get("brand")) else clean_text(rec["brand"]),
                   "price": price, "attributes": attrs,
                   "description": None if _blank(rec.get("description")) else clean_text(rec["description"]),
                   "source": name}
        if pid in products and products[pid]["title"] != product["title"]:
            problems.append(f"row {i}: product {pid} has another title than on row {products[pid]['_row']}")
            continue
        products.setdefault(pid, {**product, "_row": i})
        qid = str(rec["query_id"]).strip() if not _blank(rec.get("query_id")) else query_id_of(query)
        seen = first_row.get((qid, pid))
        if seen is not None and seen[1] != level:
            problems.append(f"row {i}: pair ({query[:40]!r}, {pid}) has label {level}, but row {seen[0]} gave "
                            f"it {seen[1]} (one label per pair)")
            continue
        first_row.setdefault((qid, pid), (i, level))
        labels.append({"query_id": qid, "query": query, "product_id": pid, "label": level,
                       "raw_label": str(rec["label"]).strip(), "label_source": f"user_{scale}", "query_type": None,
                       "source": name})
    if problems:
        more = f"\n... and {len(problems) - MAX_PROBLEMS} more" if len(problems) > MAX_PROBLEMS else ""
        raise InputError(f"{path}: {len(problems)} problem(s):\n" + "\n".join(problems[:MAX_PROBLEMS]) + more)
    if not labels:
        raise InputError(f"{path}: no rows")
    lab = pd.DataFrame(labels).drop_duplicates(["query_id", "product_id"])  # the same level: the same label
    if unknown:
        from taosr1.obs import get_logger, log_event

        log_event(get_logger(__name__), "user_set.ignored_columns", columns=unknown)
    out = pd.DataFrame([{k: v for k, v in p.items() if k != "_row"} for p in products.values()])
    out.attrs["rows"] = {pid: p["_row"] for pid, p in products.items()}  # for problems found later (catalog clashes)
    return out, lab.reset_index(drop=True)
