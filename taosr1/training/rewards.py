"""GRPO rewards as plain functions with TRL's signature ``f(prompts, completions, **columns) -> list[float]``.

* ``label_reward``: 1 for the gold label (TaoSR1's ``isequivalent``); with ``partial_credit`` (off by default) an
  adjacent level earns ``partial_credit``.
* ``format_reward``: 1 when the completion is post-CoT (label first) with all five steps, 0.5 for a label first
  without a complete CoT, 0 otherwise.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from taosr1.prompts import parse_completion


def _text(completion: Any) -> str:
    if isinstance(completion, list):  # conversational: [{"role": "assistant", "content": ...}]
        return "".join(m.get("content", "") for m in completion if isinstance(m, dict))
    return str(completion)


def label_reward(prompts: list, completions: list, gold_label: list[int], partial_credit: float = 0.0,
                 **_: Any) -> list[float]:
    out = []
    for c, g in zip(completions, gold_label):
        level = parse_completion(_text(c), require_cot=False).level
        if level is None:
            out.append(0.0)
        elif level == int(g):
            out.append(1.0)
        else:
            out.append(partial_credit if abs(level - int(g)) == 1 else 0.0)
    return out


def format_reward(prompts: list, completions: list, **_: Any) -> list[float]:
    out = []
    for c in completions:
        r = parse_completion(_text(c))
        out.append(1.0 if r.ok else 0.5 if r.level is not None else 0.0)
    return out


def label_reward_with_partial_credit(credit: float = 0.5):
    """``label_reward`` with adjacent-level credit, named for TRL's logs."""
    f = partial(label_reward, partial_credit=credit)
    f.__name__ = "label_reward_partial"  # type: ignore[attr-defined]
    return f
