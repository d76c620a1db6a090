"""The training loop's targets, checked on one evaluation: met or missed, each with its evidence.

Why: a dev table alone invites a retuned story; the loop instead states what it set out to reach (the final model
beats every baseline a team would use by a margin, each stage at least the one before it, the loop inside its time
budget) and prints, beside each miss, the numbers that explain it (intervals and the learning curve).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import pandas as pd

# the loop's trained systems in training order, and the baselines a team would use instead
LOOP_CHAIN = ("readout", "lpft", "sft", "dpo", "grpo")
BASELINES = ("lexical", "embedding", "cross_encoder")


@dataclass(frozen=True)
class Target:
    """One target: what was wanted, what the run got, whether it was met (None: not measured on this run)."""

    name: str
    want: str
    got: str
    met: bool | None
    evidence: str = ""

    @property
    def verdict(self) -> str:
        return {True: "met", False: "missed", None: "not measured"}[self.met]


def _f1(rows: Mapping[str, Mapping], system: str) -> float | None:
    r = rows.get(system)
    v = None if r is None else r.get("macro_f1")
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


def _interval(r: Mapping) -> str:
    lo, hi = r.get("macro_f1_low"), r.get("macro_f1_high")
    ok = all(v is not None and not (isinstance(v, float) and math.isnan(v)) for v in (lo, hi))
    return f" [{lo:.3f}, {hi:.3f}]" if ok else ""


def curve_summary(curve: Sequence[Mapping]) -> str:
    """'start → best → last' of a learning curve (examples seen: dev macro-F1), or '' without one."""
    pts = [p for p in curve if p.get("macro_f1") is not None and not math.isnan(float(p["macro_f1"]))]
    if not pts:
        return ""
    best = max(pts, key=lambda p: p["macro_f1"])
    fmt = lambda p: f"{p['macro_f1']:.3f} at {p['examples']}"  # noqa: E731
    return f"read-out curve (dev macro-F1 at examples seen): {fmt(pts[0])}, best {fmt(best)}, last {fmt(pts[-1])}"


def loop_targets(metrics: pd.DataFrame, seconds: float, curve: Sequence[Mapping] = (), margin: float = 0.03,
                 budget_s: float = 5400.0) -> list[Target]:
    """The loop's targets on one evaluation's metrics table (one row per system, as ``metrics_table`` returns)."""
    rows = {r["system"]: r for r in metrics.to_dict("records")}
    trained = [s for s in LOOP_CHAIN if _f1(rows, s) is not None]
    why = curve_summary(curve)
    out: list[Target] = []
    if trained:
        final = trained[-1]
        mine = _f1(rows, final)
        assert mine is not None
        for b in BASELINES:
            theirs = _f1(rows, b)
            want = f"{final} ≥ {b} + {margin:.2f} macro-F1"
            if theirs is None:
                out.append(Target(f"beats {b}", want, "not evaluated on this run", None))
                continue
            met = mine - theirs >= margin
            out.append(Target(f"beats {b}", want, f"{mine:.3f}{_interval(rows[final])} vs {theirs:.3f}"
                              f"{_interval(rows[b])} ({mine - theirs:+.3f})", met, "" if met else why))
        for a, b in zip(trained, trained[1:]):
            fa, fb = _f1(rows, a), _f1(rows, b)
            assert fa is not None and fb is not None
            met = fb >= fa
            out.append(Target(f"{b} ≥ {a}", f"{b} macro-F1 ≥ {a}'s", f"{fb:.3f} vs {fa:.3f} ({fb - fa:+.3f})", met,
                              "" if met else f"intervals: {b}{_interval(rows[b])}, {a}{_interval(rows[a])}"))
    else:
        out.append(Target("a trained model", "the loop's final model evaluated", "no trained system in the table",
                          False))
    met = seconds <= budget_s
    out.append(Target("time", f"loop ≤ {budget_s / 60:.0f} min", f"{seconds / 60:.1f} min", met))
    return out


def targets_frame(targets: Sequence[Target]) -> pd.DataFrame:
    """The targets as a table (``met``: met / missed / not measured)."""
    return pd.DataFrame([dict(target=t.name, want=t.want, got=t.got, met=t.verdict, evidence=t.evidence)
                         for t in targets])
