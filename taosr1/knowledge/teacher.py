"""The template teachers: the label-conditioned one (TaoSR1's, the default) and the deterministic knowledge teacher.

:func:`conditioned_completion` writes the five steps for the human label from the rules retrieved for the pair.
The knowledge teacher (below) writes TaoSR1's five-step CoT from the product's fields and the label rules.

It does *not* see the gold label: it predicts one from the rules (negations, "alternative to", category noun,
attribute coverage) and explains it step by step. Rejection sampling then keeps only the traces whose label agrees
with the human label, so the kept rate per class says how far plain rules get (knowledge and Q&A queries mostly
fail here, which is why the paper needs a strong teacher for them). Any engine can replace it as the teacher.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from taosr1.labels import LABEL_TEXT
from taosr1.prompts.cot import CotSteps, format_completion

if TYPE_CHECKING:
    from taosr1.knowledge.rules import Rule, RuleSet

STOP = {"a", "an", "the", "for", "to", "of", "in", "on", "with", "and", "or", "my", "i", "do", "can", "that", "is",
        "what", "which", "best", "need", "use", "it", "will", "be", "from", "into", "at", "by", "me", "so", "this"}
NEG_RE = re.compile(r"\b(not|without|no)\s+(.+)$")
ALT_RE = re.compile(r"^(?:cheaper alternative to|budget alternative to|alternative to|something like)\s+(\S+(?:\s\S+)?)\s+(.*)$")


def _tokens(text: str) -> list[str]:
    return [t for t in re.findall(r"[a-z0-9][a-z0-9+./-]*", text.lower()) if t not in STOP]


def _stem(t: str) -> str:
    return t[:-1] if len(t) > 3 and t.endswith("s") and not t.endswith("ss") else t


def _product_text(p: Mapping[str, Any]) -> str:
    attrs = p.get("attributes") or {}
    vals = " ".join(str(v) for v in (attrs.values() if isinstance(attrs, Mapping) else []))
    return " ".join(str(p.get(k) or "") for k in ("title", "category", "brand")) + " " + vals


def teach(query: str, product: Mapping[str, Any]) -> tuple[int, CotSteps]:
    """The teacher's label and its five-step reasoning for one pair."""
    q = query.lower().strip()
    excluded: list[str] = []
    alt_brand = None
    m = ALT_RE.match(q)
    if m:
        alt_brand, q = m.group(1), m.group(2)
    n = NEG_RE.search(q)
    if n:
        excluded = _tokens(n.group(2))
        q = q[: n.start()].strip()
    wanted = _tokens(q)
    ptext = _product_text(product)
    have = {_stem(t) for t in _tokens(ptext)}
    noun = wanted[-1] if wanted else ""
    title = str(product.get("title") or "")
    brand = str(product.get("brand") or "") or "unknown"
    attrs = product.get("attributes") or {}
    attr_txt = ", ".join(f"{k}={v}" for k, v in sorted(attrs.items())) if isinstance(attrs, Mapping) and attrs else \
        "none listed"
    wants = [f"a {noun}" if noun else "an unclear product"]
    if len(wanted) > 1:
        wants.append("with " + ", ".join(wanted[:-1]))
    if excluded:
        wants.append("excluding " + " ".join(excluded))
    if alt_brand:
        wants.append(f"as a cheaper alternative to {alt_brand}")
    s_query = f'"{query}": the user wants ' + " ".join(wants) + "."
    s_item = f"{title} (category: {product.get('category') or 'unknown'}; brand: {brand}; attributes: {attr_txt})."
    noun_ok = bool(noun) and _stem(noun) in have
    matched = [t for t in wanted[:-1] if _stem(t) in have]
    missing = [t for t in wanted[:-1] if _stem(t) not in have]
    hit_excluded = [t for t in excluded if _stem(t) in have]
    same_brand = bool(alt_brand) and _stem(alt_brand.split()[0]) in {_stem(t) for t in _tokens(brand)}
    if not noun_ok:
        level = 1
        s_cat = f"the item is not a {noun or 'match for the query'}; it is a different kind of product."
    else:
        s_cat = f"the item is a {noun}, the kind of product the query asks for."
        if hit_excluded:
            level = 2
        elif same_brand:
            level = 2
        elif len(missing) >= 2 or (missing and len(matched) == 0 and len(wanted) > 2):
            level = 2
        elif missing:
            level = 3
        else:
            level = 4
    parts = []
    if matched:
        parts.append("matches " + ", ".join(matched))
    if missing:
        parts.append("does not show " + ", ".join(missing))
    if excluded:
        parts.append(("has the excluded " if hit_excluded else "avoids the excluded ") + " ".join(excluded))
    if alt_brand:
        parts.append(f"is made by {alt_brand} itself" if same_brand else f"is not a {alt_brand} product")
    s_attr = ("; ".join(parts) or "the query states no attributes") + "."
    reason = {4: "every stated demand is met", 3: "the right product with a minor deviation",
              2: "a key demand fails", 1: "it is a different kind of product"}[level]
    s_judge = f"{LABEL_TEXT[level]}: {reason}."
    return level, CotSteps(s_query, s_item, s_cat, s_attr, s_judge)


def teacher_completion(query: str, product: Mapping[str, Any]) -> tuple[int, str]:
    """The teacher's label and its post-CoT completion text."""
    level, steps = teach(query, product)
    return level, format_completion(level, steps, "post_cot")


def conditioned_completion(query: str, product: Mapping[str, Any], label: int, rules: "RuleSet",
                           query_type: str = "plain", compact: bool = False) -> tuple[int, str, list[str], int]:
    """TaoSR1's teacher, as a template: the five steps for the *human* label, argued from the rules retrieved for
    this pair (cited by id). Returns (the trace's label, the post-CoT completion, the cited rule ids, the level the
    rules alone would give, a diagnostic of how far rules get)."""
    rules_level, steps = teach(query, product)
    text = f"{query} {_product_text(product)}"
    cited = rules.retrieve(text, query_type, k=2, level=label) or rules.retrieve(text, query_type, k=1)
    noun_line = steps.category
    if (label >= 3) != (rules_level >= 3) and label >= 3:
        noun_line = "the item is the kind of product the query asks for, though its title words differ."
    elif label == 1 and rules_level > 1:
        noun_line = "despite shared words, the item is a different kind of product than the query asks for."
    type_note = f" (query type: {query_type})" if query_type != "plain" else ""
    if compact:  # the same five steps in ~50 tokens: for small models, where the CoT is most of a step's cost
        wants = steps.query.split(": the user wants ", 1)[-1]
        item = (str(product.get("title") or "").split(",")[0])[:60]
        judged = CotSteps(wants + type_note, item + ".", noun_line.split(";")[0].split(",")[0].rstrip(".") + ".",
                          steps.attributes, f"{LABEL_TEXT[label]} [{', '.join(r.id for r in cited)}].")
    else:
        why = " ".join(f"[{r.id}] {r.text}" for r in cited)
        judged = CotSteps(steps.query + type_note, steps.item, noun_line, steps.attributes,
                          f"{LABEL_TEXT[label]}: {why}")
    return label, format_completion(label, judged, "post_cot"), [r.id for r in cited], rules_level


def teacher_hint(label: int, rules: list["Rule"]) -> str:
    """What an engine teacher is told besides the pair: the human label and the rules to argue from (TaoSR1's
    label-conditioned CoT). Our own text, never the untrusted pair's."""
    cited = "\n".join(f"- [{r.id}] {r.text}" for r in rules)
    return (f"The human raters' label is {LABEL_TEXT[label]}. Explain it in the five steps, using these rules:\n"
            f"{cited}")
