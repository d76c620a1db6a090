"""The five-step chain of thought and the strict parser for both output orders.

post-CoT (deployed; label first)::

    3-Related
    <think>
    1. Query understanding: ...
    2. Item understanding: ...
    3. Category match: ...
    4. Attribute match: ...
    5. Judgement: ...
    </think>

think-first (ablation): the same ``<think>`` block first, the label on the last line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taosr1.labels import LABEL_TEXT
from taosr1.prompts.template import Order

STEP_NAMES = ("Query understanding", "Item understanding", "Category match", "Attribute match", "Judgement")
_LABEL_RE = re.compile(r"^\s*([1-4])-(Excellent|Related|Mismatch|Irrelevant)\s*$")
_THINK_RE = re.compile(r"<think>\s*(.*?)\s*</think>", re.DOTALL)


@dataclass(frozen=True)
class CotSteps:
    """The five steps' text."""

    query: str
    item: str
    category: str
    attributes: str
    judgement: str

    def render(self) -> str:
        body = (self.query, self.item, self.category, self.attributes, self.judgement)
        return "\n".join(f"{i}. {name}: {text.strip()}" for i, (name, text) in enumerate(zip(STEP_NAMES, body), 1))


@dataclass(frozen=True)
class ParseResult:
    """A parsed completion: the level, or a format error saying what is wrong."""

    level: int | None
    error: str | None
    steps: int = 0

    @property
    def ok(self) -> bool:
        return self.level is not None and self.error is None


def format_completion(level: int, steps: CotSteps, order: Order = "post_cot") -> str:
    """The target text for a level and its reasoning, in the given order."""
    think = f"<think>\n{steps.render()}\n</think>"
    label = LABEL_TEXT[level]
    return f"{label}\n{think}" if order == "post_cot" else f"{think}\n{label}"


def _label(line: str) -> int | None:
    m = _LABEL_RE.match(line)
    if not m:
        return None
    level = int(m.group(1))
    return level if LABEL_TEXT[level].split("-", 1)[1] == m.group(2) else None


def parse_completion(text: str, order: Order = "post_cot", require_cot: bool = True) -> ParseResult:
    """Strict: the label line where the order puts it, and (unless ``require_cot=False``) five numbered steps."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    if not lines:
        return ParseResult(None, "empty completion")
    where = lines[0] if order == "post_cot" else lines[-1]
    level = _label(where)
    if level is None:
        return ParseResult(None, f"{'first' if order == 'post_cot' else 'last'} line is not a label: {where[:60]!r}")
    if not require_cot:
        return ParseResult(level, None)
    m = _THINK_RE.search(text)
    if not m:
        return ParseResult(level, "no <think>...</think> block")
    found = [name for i, name in enumerate(STEP_NAMES, 1)
             if re.search(rf"^\s*{i}\.\s*{re.escape(name)}\s*:", m.group(1), re.MULTILINE)]
    if len(found) != len(STEP_NAMES):
        missing = [n for n in STEP_NAMES if n not in found]
        return ParseResult(level, f"CoT misses step(s): {', '.join(missing)}", steps=len(found))
    return ParseResult(level, None, steps=5)
