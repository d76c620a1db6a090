"""TaoSR1's four relevance levels and the one place where public label sets are mapped onto them.

| source | rule | why |
|---|---|---|
| ESCI | E→4, S→3, C→2, I→1 | a complement does not satisfy the query itself |
| 1–4 ratings | identity | same scale |
| 3-level (Exact/Partial/Irrelevant, WANDS) | 3→4, 2→3, 1→1 | "partial" is a deviation, not a wrong key attribute |
| Home Depot mean of 1–3 ratings | ≥2.75→4, [2.25,2.75)→3, [1.5,2.25)→2, <1.5→1 | 3.00 (and 2.75) means every rater said perfect; 2.33–2.67 mostly relevant; 1.67–2.00 a key deviation; ≤1.33 irrelevant |
"""

from __future__ import annotations

import math

LEVELS: tuple[int, ...] = (4, 3, 2, 1)
LABEL_TEXT: dict[int, str] = {4: "4-Excellent", 3: "3-Related", 2: "2-Mismatch", 1: "1-Irrelevant"}
TIER_OF_LEVEL: dict[int, str] = {4: "Good", 3: "Good", 2: "Mid", 1: "Bad"}
# The rubric raters and the model read (the instruction quotes it verbatim).
RUBRIC: dict[int, str] = {
    4: "the product satisfies every demand of the query (category, brand, key attributes, constraints).",
    3: "the right kind of product with a minor deviation (a secondary attribute differs, or it is not cheaper when a "
       "cheaper alternative is asked for).",
    2: "the right category but a key demand fails (wrong brand, wrong key attribute, or an attribute the query "
       "excludes).",
    1: "a different kind of product.",
}


def rubric_text() -> str:
    """The four levels, one line each: ``4-Excellent: …``."""
    return "\n".join(f"{LABEL_TEXT[lv]}: {RUBRIC[lv]}" for lv in LEVELS)


def parse_level(value: object) -> int:
    """A rater's answer → level: ``3``, ``"3"``, ``"3-Related"`` or ``"Related"``; anything else is a ValueError."""
    text = str(value).strip()
    for lv, name in LABEL_TEXT.items():
        if text in (str(lv), name, name.split("-", 1)[1]) or text.lower() == name.split("-", 1)[1].lower():
            return lv
    raise ValueError(f"not a label on the four levels: {text[:40]!r}")

ESCI_TO_LEVEL: dict[str, int] = {"E": 4, "S": 3, "C": 2, "I": 1}
THREE_LEVEL_TO_LEVEL: dict[int, int] = {3: 4, 2: 3, 1: 1}


def from_homedepot_mean(mean: float) -> int:
    """Home Depot's mean of 1–3 rater scores → level (thresholds in the module docstring)."""
    if mean is None or (isinstance(mean, float) and math.isnan(mean)) or not 1.0 <= mean <= 3.0:
        raise ValueError(f"Home Depot relevance must be a mean in [1, 3], got {mean!r}")
    if mean >= 2.75:
        return 4
    if mean >= 2.25:
        return 3
    if mean >= 1.5:
        return 2
    return 1


def from_esci(label: str) -> int:
    """Amazon ESCI letter (E/S/C/I, or the full word) → level."""
    key = str(label).strip()[:1].upper()
    if key not in ESCI_TO_LEVEL:
        raise ValueError(f"ESCI label must be one of E, S, C, I; got {label!r}")
    return ESCI_TO_LEVEL[key]


def from_rating_1_4(rating: int) -> int:
    """A 1–4 rating is already a level."""
    if int(rating) not in LEVELS:
        raise ValueError(f"rating must be 1..4, got {rating!r}")
    return int(rating)


def from_three_level(rating: int) -> int:
    """3 = exact, 2 = partial, 1 = irrelevant (WANDS-style) → level."""
    if int(rating) not in THREE_LEVEL_TO_LEVEL:
        raise ValueError(f"3-level rating must be 1..3, got {rating!r}")
    return THREE_LEVEL_TO_LEVEL[int(rating)]
