"""The label-conditioned teacher: versioned rules, their retrieval, and the five steps it writes."""

from __future__ import annotations

import json

import pytest

from taosr1.knowledge.rules import RuleSet
from taosr1.knowledge.teacher import conditioned_completion, teacher_hint
from taosr1.errors import InputError
from taosr1.prompts import parse_completion


def test_shipped_rules_cover_every_level_and_hard_query_type():
    rules = RuleSet.load()
    assert rules.version.startswith("relevance-rules-v")
    assert {lv for r in rules.rules for lv in r.levels} == {1, 2, 3, 4}
    assert {t for r in rules.rules for t in r.query_types} >= {"negation", "alternative", "qa", "knowledge"}


def test_retrieval_follows_the_query_type_and_the_label():
    rules = RuleSet.load()
    neg = rules.retrieve("drill without cord corded drill", "negation", k=2)
    assert neg and all(not r.query_types or "negation" in r.query_types for r in neg)
    assert any("negation" in r.query_types for r in neg)
    assert all(2 in r.levels for r in rules.retrieve("drill without cord", "negation", k=3, level=2))
    alt = rules.retrieve("cheaper alternative to dewalt drill", "alternative", k=1, level=2)
    assert alt[0].id == "ALT-same-brand"
    # a plain query never gets a type-specific rule
    assert all(not r.query_types for r in rules.retrieve("red hammer", "plain", k=5))


def test_conditioned_trace_argues_for_the_human_label(world):
    products, _ = world
    p = products.iloc[0].to_dict()
    rules = RuleSet.load()
    for label in (4, 3, 2, 1):
        level, text, cited, rules_level = conditioned_completion("cordless drill", p, label, rules, "plain")
        parsed = parse_completion(text)
        assert level == label and parsed.ok and parsed.level == label
        assert cited and all(f"[{c}" in text or c in text for c in cited)
        assert rules_level in (1, 2, 3, 4)
    _, short, _, _ = conditioned_completion("cordless drill", p, 3, rules, "plain", compact=True)
    _, long, _, _ = conditioned_completion("cordless drill", p, 3, rules, "plain")
    assert parse_completion(short).ok and len(short) < len(long)
    hint = teacher_hint(2, rules.retrieve("drill", "plain", level=2))
    assert "2-Mismatch" in hint and "[L2-" in hint


def test_a_teams_own_rules_file(tmp_path):
    own = {"version": "acme-rules-3", "rules": [
        {"id": f"A{lv}", "levels": [lv], "query_types": [], "text": f"level {lv} rule", "keywords": "x"}
        for lv in (1, 2, 3, 4)]}
    path = tmp_path / "rules.json"
    path.write_text(json.dumps(own))
    assert RuleSet.load(str(path)).version == "acme-rules-3"
    own["rules"][0]["levels"] = [7]
    path.write_text(json.dumps(own))
    with pytest.raises(InputError, match=r"rule 0 \(A1\)"):
        RuleSet.load(str(path))
    own["rules"] = [r for r in own["rules"] if 1 not in r["levels"] and 7 not in r["levels"]]
    path.write_text(json.dumps(own))
    with pytest.raises(InputError, match=r"no rule argues for level\(s\) \[1\]"):
        RuleSet.load(str(path))
