"""Atomic relevance rules as versioned data, and the retrieval of the rules that apply to one pair.

TaoSR1's teacher reasons from rules retrieved per pair. The shipped set (``resources/rules/relevance_rules.json``)
covers the four levels and the four hard query types; a team passes its own file (same shape) with ``--rules``.
Retrieval is BM25 (``rank_bm25``) over each rule's text and keywords, restricted to rules of the pair's query type
or of any type, so a negation query is always argued with the negation rules.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path

from taosr1.errors import InputError

_WORD = re.compile(r"[a-z0-9]+")
LEVELS = (1, 2, 3, 4)
QUERY_TYPES = ("negation", "alternative", "qa", "knowledge", "plain")


@dataclass(frozen=True)
class Rule:
    id: str
    levels: tuple[int, ...]
    query_types: tuple[str, ...]
    text: str
    keywords: str = ""


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


class RuleSet:
    """A versioned rule set with a BM25 index over it."""

    def __init__(self, version: str, rules: list[Rule]) -> None:
        from rank_bm25 import BM25Okapi

        self.version = version
        self.rules = rules
        self._bm25 = BM25Okapi([_words(f"{r.text} {r.keywords}") or ["_"] for r in rules])

    @classmethod
    def load(cls, path: str | None = None) -> "RuleSet":
        """The shipped rules, or a team's own file; every rule is checked (levels, types, text) with its id named."""
        from taosr1 import resources

        where = path or "(shipped relevance_rules.json)"
        try:
            doc = json.loads(Path(path).read_text() if path else resources.read_text("rules", "relevance_rules"))
            rules = []
            for i, r in enumerate(doc["rules"]):
                rule = Rule(str(r["id"]), tuple(int(v) for v in r["levels"]), tuple(r.get("query_types") or ()),
                            str(r["text"]), str(r.get("keywords", "")))
                bad = [v for v in rule.levels if v not in LEVELS]
                bad += [t for t in rule.query_types if t not in QUERY_TYPES]
                if bad or not rule.levels or not rule.text.strip():
                    raise ValueError(f"rule {i} ({rule.id}): needs levels in 1-4, known query types "
                                     f"({', '.join(QUERY_TYPES)}) and text; got {bad or 'no levels/text'}")
                rules.append(rule)
            version = str(doc["version"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise InputError(f"relevance rules {where}: {type(e).__name__}: {e}") from None
        if not rules:
            raise InputError(f"relevance rules {where}: no rules")
        missing = [lv for lv in LEVELS if not any(lv in r.levels for r in rules)]
        if missing:
            raise InputError(f"relevance rules {where}: no rule argues for level(s) {missing}")
        return cls(version, rules)

    def retrieve(self, text: str, query_type: str = "plain", k: int = 3, level: int | None = None) -> list[Rule]:
        """The ``k`` best rules for a pair's text, among rules of its query type (or of any type); with ``level``
        only rules that argue for that level (what a label-conditioned teacher cites)."""
        scores = self._bm25.get_scores(_words(text) or ["_"])
        ranked = sorted(range(len(self.rules)), key=lambda i: (-(scores[i] + (2.0 if query_type in
                                                                              self.rules[i].query_types else 0.0)), i))
        out = [self.rules[i] for i in ranked
               if (not self.rules[i].query_types or query_type in self.rules[i].query_types)
               and (level is None or level in self.rules[i].levels)]
        return out[:k]


@functools.lru_cache(maxsize=4)
def cached_rules(path: str | None = None) -> RuleSet:
    """One parsed and indexed rule set per Python worker (Spark UDFs call this per batch)."""
    return RuleSet.load(path)
