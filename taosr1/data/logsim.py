"""Seeded search-log simulator: judged pairs + catalog → impression, click, add-to-cart and order events.

Behaviour model (a cascade-style click model, as in the click-model literature):
* sessions arrive uniformly over each day; queries follow a Zipf-like popularity;
* the engine ranks a query's judged products by a noisy version of their label (imperfect ranking) and shows
  the top ``page_size``;
* P(click) = P(examine | position) · P(attractive | label), with position bias P(examine) = 1 / position^η;
* add-to-cart and order rates depend on the label, so an irrelevant item is seldom bought;
* a set share of events is re-sent (exact duplicates with the same ``event_id``) and a set share is malformed
  (bad JSON, a missing field, a bad timestamp, an unknown event type, a bad position, a timestamp on another
  day), each of which the ingest job must quarantine with its reason.
Output: ``<out>/ds=<yyyy-MM-dd>/events-00000.jsonl`` (or ``.parquet``) and ``<out>/_manifest.json`` with what was
injected, so tests can check that nothing is lost.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

CLICK_ATTRACT = {4: 0.55, 3: 0.30, 2: 0.12, 1: 0.03}
CART_GIVEN_CLICK = {4: 0.30, 3: 0.15, 2: 0.05, 1: 0.01}
ORDER_GIVEN_CART = {4: 0.55, 3: 0.40, 2: 0.20, 1: 0.05}
MALFORMED_KINDS = ("bad_json", "missing_product_id", "bad_timestamp", "unknown_event_type", "bad_position",
                   "other_day_timestamp", "missing_query")


class SimConfig(BaseModel):
    """Knobs of the simulation; defaults give a few thousand events a day."""

    model_config = ConfigDict(extra="forbid")

    start: str = Field(default="2026-11-19", description="First day (yyyy-MM-dd).")
    days: int = Field(default=3, ge=1, le=366)
    sessions_per_day: int = Field(default=400, ge=1)
    page_size: int = Field(default=8, ge=1)
    position_eta: float = Field(default=0.8, gt=0)
    rank_noise: float = Field(default=0.9, ge=0)
    duplicate_rate: float = Field(default=0.02, ge=0, le=1)
    malformed_rate: float = Field(default=0.01, ge=0, le=1)
    seed: int = 11
    fmt: Literal["jsonl", "parquet"] = "jsonl"


@dataclass
class DayManifest:
    ds: str
    rows: int = 0
    valid_events: int = 0
    duplicates: int = 0
    malformed: dict[str, int] = field(default_factory=dict)


def _ts(day: dt.date, seconds: float) -> str:
    base = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return (base + dt.timedelta(seconds=float(seconds))).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _events_for_day(rng: np.random.Generator, day: dt.date, cfg: SimConfig, groups: list[tuple[str, str, list]],
                    popularity: np.ndarray) -> list[dict]:
    events: list[dict] = []
    for s in range(cfg.sessions_per_day):
        qi = int(rng.choice(len(groups), p=popularity))
        qid, query, items = groups[qi]
        start = float(rng.uniform(0, 86_400 - 4_000))  # a session (< 3,700 s) ends the same day
        session = f"s-{day:%Y%m%d}-{s:05d}"
        user = f"u-{int(rng.integers(0, cfg.sessions_per_day * 3)):06d}"
        scores = np.array([lab for _, lab in items], dtype=float) + rng.normal(0, cfg.rank_noise, len(items))
        order = np.argsort(-scores)[: cfg.page_size]
        t = start
        for pos, idx in enumerate(order, start=1):
            pid, label = items[idx]
            base = dict(session_id=session, user_id=user, query_id=qid, query=query, product_id=pid, position=pos)
            t += float(rng.uniform(0.05, 0.4))
            events.append(dict(base, event_type="impression", ts=_ts(day, t)))
            if rng.random() < (1.0 / pos ** cfg.position_eta) * CLICK_ATTRACT[label]:
                t += float(rng.uniform(2, 40))
                events.append(dict(base, event_type="click", ts=_ts(day, t)))
                if rng.random() < CART_GIVEN_CLICK[label]:
                    t += float(rng.uniform(5, 120))
                    events.append(dict(base, event_type="add_to_cart", ts=_ts(day, t)))
                    if rng.random() < ORDER_GIVEN_CART[label]:
                        t += float(rng.uniform(30, 300))
                        events.append(dict(base, event_type="order", ts=_ts(day, t)))
    events.sort(key=lambda e: e["ts"])
    for i, e in enumerate(events):
        e["event_id"] = f"e-{day:%Y%m%d}-{i:07d}"
    return events


def _corrupt(rng: np.random.Generator, e: dict, kind: str, day: dt.date) -> dict | str:
    e = dict(e, event_id=e["event_id"] + "-x")  # a fresh id: corrupt rows never collide with good ones
    if kind == "bad_json":
        return json.dumps(e)[: int(rng.integers(5, 40))]
    if kind == "missing_product_id":
        e.pop("product_id")
    elif kind == "missing_query":
        e["query"] = ""
    elif kind == "bad_timestamp":
        e["ts"] = "yesterday at noon"
    elif kind == "unknown_event_type":
        e["event_type"] = "hover"
    elif kind == "bad_position":
        e["position"] = int(rng.choice([0, -3]))
    elif kind == "other_day_timestamp":
        e["ts"] = _ts(day - dt.timedelta(days=3), 3600)
    return e


def simulate_logs(products: pd.DataFrame, labels: pd.DataFrame, out_dir: str | Path,
                  cfg: SimConfig | None = None) -> dict:
    """Write simulated raw logs for ``cfg.days`` days to ``out_dir``; returns (and writes) the manifest."""
    cfg = cfg or SimConfig()
    rng = np.random.default_rng(cfg.seed)
    out = Path(out_dir)
    known = set(products["product_id"])
    labels = labels[labels["product_id"].isin(known)]
    groups = [(qid, g["query"].iloc[0], list(zip(g["product_id"], g["label"].astype(int))))
              for qid, g in labels.groupby("query_id", sort=True)]
    if not groups:
        raise ValueError("no judged pairs with a known product to simulate from")
    weights = 1.0 / np.arange(1, len(groups) + 1) ** 0.6
    popularity = rng.permutation(weights / weights.sum())
    first = dt.date.fromisoformat(cfg.start)
    manifest = {"config": cfg.model_dump(), "days": []}
    for d in range(cfg.days):
        day = first + dt.timedelta(days=d)
        events = _events_for_day(rng, day, cfg, groups, popularity)
        rows: list[dict | str] = []
        m = DayManifest(ds=f"{day:%Y-%m-%d}", valid_events=len(events))
        for e in events:
            rows.append(e)
            if rng.random() < cfg.duplicate_rate:
                rows.append(dict(e))
                m.duplicates += 1
            if rng.random() < cfg.malformed_rate:
                kind = MALFORMED_KINDS[int(rng.integers(len(MALFORMED_KINDS)))]
                rows.append(_corrupt(rng, e, kind, day))
                m.malformed[kind] = m.malformed.get(kind, 0) + 1
        m.rows = len(rows)
        target = out / f"ds={m.ds}"
        target.mkdir(parents=True, exist_ok=True)
        for old in target.glob("events-*"):
            old.unlink()
        if cfg.fmt == "jsonl":
            with open(target / "events-00000.jsonl", "w") as fh:
                for r in rows:
                    fh.write((r if isinstance(r, str) else json.dumps(r)) + "\n")
        elif cfg.fmt == "parquet":
            # Parquet can't hold a broken JSON line: those rows become records with only a 'raw' field.
            recs = [({"raw_text": r} if isinstance(r, str) else r) for r in rows]
            frame = pd.DataFrame(recs)
            frame["position"] = frame["position"].astype("Int64")
            frame.to_parquet(target / "events-00000.parquet", index=False)
        else:
            raise ValueError(f"fmt must be jsonl or parquet, got {cfg.fmt!r}")
        manifest["days"].append(asdict(m))
    out.mkdir(parents=True, exist_ok=True)
    (out / "_manifest.json").write_text(json.dumps(manifest, indent=2))
    return manifest
