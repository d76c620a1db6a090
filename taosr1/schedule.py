"""Which day a scheduled run scores, from what started it (plain Python: the Airflow venv imports it)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any


def day_of_run(ds: str | None, triggering_events: Mapping[Any, Iterable[Any]] | None) -> str:
    """An asset-triggered run scores the day named by the newest triggering event's ``extra["ds"]`` (the log
    shipper says which day landed); a clock-triggered run scores its data interval's day (``ds``)."""
    events = [e for evs in (triggering_events or {}).values() for e in evs
              if isinstance(getattr(e, "extra", None), Mapping) and e.extra.get("ds")]
    if events:
        newest = max(events, key=lambda e: str(getattr(e, "timestamp", "")))
        day = str(newest.extra["ds"])
    elif ds:
        day = ds
    else:
        raise ValueError("this run names no day: trigger it with a search-logs asset event whose extra has "
                         "'ds' (yyyy-MM-dd), or on the clock")
    return f"{dt.date.fromisoformat(day):%Y-%m-%d}"
