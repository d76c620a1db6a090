"""A seeded catalog world: products with categories, brands, attributes and prices, plus queries of the hard kinds
TaoSR1 targets (negation, cheaper alternatives, Q&A-style, knowledge) judged on the four levels by explicit rules.

The rules that label a pair are the same ones a knowledge-based teacher can explain step by step, so every label in
the world has a reason: category match, key attributes, soft attributes, negations, brand and price constraints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

# category path -> (noun, base price, {attribute: values}, key attributes, premium brands, budget brands)
CATALOG: dict[str, dict] = {
    "Tools > Power Tools > Drills": dict(
        noun="Drill", price=120.0, key=["power_source"],
        attrs={"power_source": ["cordless", "corded"], "voltage": ["12V", "18V", "20V"], "chuck": ["3/8 in", "1/2 in"]},
        premium=["DeWalt", "Milwaukee", "Makita"], budget=["Ryobi", "Black+Decker", "Hyper Tough"]),
    "Tools > Hand Tools > Hammers": dict(
        noun="Hammer", price=25.0, key=["head_weight"],
        attrs={"handle": ["fiberglass", "steel", "hickory wood"], "head_weight": ["16 oz", "20 oz", "22 oz"]},
        premium=["Estwing", "Stiletto"], budget=["Husky", "Stanley"]),
    "Kitchen > Cookware > Frying Pans": dict(
        noun="Frying Pan", price=45.0, key=["material"],
        attrs={"material": ["cast iron", "stainless steel", "nonstick aluminum"], "size": ["8 in", "10 in", "12 in"]},
        premium=["All-Clad", "Le Creuset"], budget=["Lodge", "T-fal", "Tramontina"]),
    "Lighting > Light Bulbs > LED Bulbs": dict(
        noun="LED Light Bulb", price=12.0, key=["brightness"],
        attrs={"brightness": ["60W equivalent", "75W equivalent", "100W equivalent"],
               "color_temperature": ["soft white", "daylight"]},
        premium=["Philips", "Cree"], budget=["Feit Electric", "EcoSmart"]),
    "Outdoor > Garden > Garden Hoses": dict(
        noun="Garden Hose", price=40.0, key=["length"],
        attrs={"material": ["rubber", "vinyl", "hybrid polymer"], "length": ["25 ft", "50 ft", "100 ft"]},
        premium=["Flexzilla", "Gilmour"], budget=["Swan", "Melnor"]),
    "Bath > Faucets > Bathroom Faucets": dict(
        noun="Bathroom Faucet", price=110.0, key=["finish"],
        attrs={"finish": ["chrome", "brushed nickel", "matte black"], "handles": ["single handle", "widespread"]},
        premium=["Moen", "Kohler", "Delta"], budget=["Glacier Bay", "Pfister"]),
    "Paint > Interior Paint": dict(
        noun="Interior Paint 1 gal", price=38.0, key=["sheen"],
        attrs={"sheen": ["flat", "eggshell", "semi-gloss"], "color": ["white", "gray", "blue"]},
        premium=["Benjamin Moore", "Sherwin-Williams"], budget=["Glidden", "Behr"]),
    "Hardware > Fasteners > Screws": dict(
        noun="Screws 1 lb box", price=9.0, key=["screw_type"],
        attrs={"screw_type": ["wood screw", "drywall screw", "deck screw"], "material": ["stainless steel", "zinc"]},
        premium=["GRK", "Simpson Strong-Tie"], budget=["Everbilt", "Grip-Rite"]),
    "Automotive > Lubricants": dict(
        noun="Lubricant", price=8.0, key=["product_type"],
        attrs={"product_type": ["penetrating oil", "silicone spray", "white lithium grease"],
               "size": ["8 oz", "11 oz"]},
        premium=["PB Blaster", "Liquid Wrench"], budget=["WD-40", "3-IN-ONE"]),
    "Outdoor > Grills": dict(
        noun="Grill", price=350.0, key=["fuel"],
        attrs={"fuel": ["gas", "charcoal", "electric"], "burners": ["2-burner", "3-burner", "4-burner"]},
        premium=["Weber", "Traeger"], budget=["Char-Broil", "Nexgrill"]),
}

# Knowledge and Q&A queries: text -> (category, key attribute requirements). The answer needs domain knowledge.
KNOWLEDGE: list[tuple[str, str, dict[str, str]]] = [
    ("something to loosen a rusted bolt", "Automotive > Lubricants", {"product_type": "penetrating oil"}),
    ("pan that can go from stovetop into a 500 degree oven", "Kitchen > Cookware > Frying Pans",
     {"material": "cast iron"}),
    ("hose that stays flexible in freezing weather", "Outdoor > Garden > Garden Hoses", {"material": "rubber"}),
    ("screws that won't rust on an outdoor deck", "Hardware > Fasteners > Screws", {"material": "stainless steel"}),
    ("paint finish that wipes clean in a bathroom", "Paint > Interior Paint", {"sheen": "semi-gloss"}),
    ("grill that gives smoky flavor", "Outdoor > Grills", {"fuel": "charcoal"}),
    ("bulb for reading that looks like sunlight", "Lighting > Light Bulbs > LED Bulbs",
     {"color_temperature": "daylight"}),
    ("lubricant for a squeaky garage door track", "Automotive > Lubricants", {"product_type": "white lithium grease"}),
]
QA: list[tuple[str, str, dict[str, str]]] = [
    ("what drill can i use without an outlet nearby", "Tools > Power Tools > Drills", {"power_source": "cordless"}),
    ("which hammer is best for framing", "Tools > Hand Tools > Hammers", {"head_weight": "22 oz"}),
    ("what screws do i need to hang drywall", "Hardware > Fasteners > Screws", {"screw_type": "drywall screw"}),
    ("what hose length reaches the back of a big yard", "Outdoor > Garden > Garden Hoses", {"length": "100 ft"}),
    ("which bulb replaces an old 100 watt bulb", "Lighting > Light Bulbs > LED Bulbs",
     {"brightness": "100W equivalent"}),
    ("what faucet matches black cabinet hardware", "Bath > Faucets > Bathroom Faucets", {"finish": "matte black"}),
    ("which grill runs off a propane tank", "Outdoor > Grills", {"fuel": "gas"}),
]


@dataclass(frozen=True)
class Intent:
    """What a query asks for, in terms the labelling rules check."""

    category: str
    key: dict[str, str] = field(default_factory=dict)     # mismatch -> 2-Mismatch
    soft: dict[str, str] = field(default_factory=dict)    # mismatch -> 3-Related
    brand: str | None = None                               # wrong brand -> 2-Mismatch
    exclude: dict[str, str] = field(default_factory=dict)  # negation: match -> 2-Mismatch
    alternative_to: str | None = None                      # must not be this brand, and must be cheaper
    max_price: float | None = None


def judge(intent: Intent, product: dict) -> tuple[int, str]:
    """Label a product for an intent with the world's rules; returns (level, reason)."""
    if product["category"] != intent.category:
        return 1, "different category"
    attrs = product["attributes"]
    for k, v in intent.exclude.items():
        if attrs.get(k) == v:
            return 2, f"query excludes {k}={v}"
    if intent.brand and product["brand"] != intent.brand:
        return 2, f"brand {product['brand']} is not {intent.brand}"
    if intent.alternative_to:
        if product["brand"] == intent.alternative_to:
            return 2, f"is the {intent.alternative_to} the query wants an alternative to"
        if intent.max_price is not None and product["price"] >= intent.max_price:
            return 3, f"not cheaper than {intent.alternative_to} (price {product['price']:.2f})"
    for k, v in intent.key.items():
        if attrs.get(k) != v:
            return 2, f"key attribute {k} is {attrs.get(k)}, query wants {v}"
    for k, v in intent.soft.items():
        if attrs.get(k) != v:
            return 3, f"attribute {k} is {attrs.get(k)}, query prefers {v}"
    return 4, "category and every stated attribute match"


def _products(rng: np.random.Generator, per_category: int) -> pd.DataFrame:
    rows = []
    n = 0
    for cat, spec in CATALOG.items():
        brands = spec["premium"] + spec["budget"]
        for _ in range(per_category):
            n += 1
            brand = str(rng.choice(brands))
            attrs = {k: str(rng.choice(v)) for k, v in spec["attrs"].items()}
            tier = 1.6 if brand in spec["premium"] else 0.8
            price = round(float(spec["price"] * tier * rng.lognormal(0.0, 0.2)), 2)
            words = " ".join(attrs[k].title() if k != "voltage" else attrs[k] for k in spec["attrs"])
            title = f"{brand} {words} {spec['noun']}"
            desc = (f"{spec['noun']} by {brand}. " + "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in attrs.items())
                    + ".")
            rows.append(dict(product_id=f"P{n:05d}", title=title, category=cat, brand=brand, price=price,
                             attributes=attrs, description=desc, source="world"))
    return pd.DataFrame(rows)


def _queries(rng: np.random.Generator, n_plain: int) -> list[tuple[str, str, Intent]]:
    """(query text, query type, intent) for every kind of query."""
    out: list[tuple[str, str, Intent]] = []
    cats = list(CATALOG)
    for _ in range(n_plain):
        cat = str(rng.choice(cats))
        spec = CATALOG[cat]
        kind = str(rng.choice(["plain", "brand", "attribute", "negation", "alternative"], p=[.15, .2, .3, .2, .15]))
        noun = spec["noun"].split(" 1 ")[0].lower()
        if kind == "plain":
            out.append((noun, "plain", Intent(cat)))
        elif kind == "brand":
            brand = str(rng.choice(spec["premium"] + spec["budget"]))
            out.append((f"{brand.lower()} {noun}", "plain", Intent(cat, brand=brand)))
        elif kind == "attribute":
            k1 = str(rng.choice(spec["key"]))
            v1 = str(rng.choice(spec["attrs"][k1]))
            soft_k = [k for k in spec["attrs"] if k not in spec["key"]]
            soft = {}
            text = f"{v1} {noun}"
            if soft_k and rng.random() < 0.6:
                k2 = str(rng.choice(soft_k))
                soft = {k2: str(rng.choice(spec["attrs"][k2]))}
                text = f"{soft[k2]} {v1} {noun}"
            out.append((text, "attribute", Intent(cat, key={k1: v1}, soft=soft)))
        elif kind == "negation":
            k = str(rng.choice(list(spec["attrs"])))
            v = str(rng.choice(spec["attrs"][k]))
            word = str(rng.choice(["not", "without", "no"]))
            out.append((f"{noun} {word} {v}", "negation", Intent(cat, exclude={k: v})))
        else:
            brand = str(rng.choice(spec["premium"]))
            ref = spec["price"] * 1.6
            phrase = str(rng.choice(["cheaper alternative to", "budget alternative to", "something like"]))
            out.append((f"{phrase} {brand.lower()} {noun}", "alternative",
                        Intent(cat, alternative_to=brand, max_price=round(ref * 0.85, 2))))
    for text, cat, key in KNOWLEDGE:
        out.append((text, "knowledge", Intent(cat, key=key)))
    for text, cat, key in QA:
        out.append((text, "qa", Intent(cat, key=key)))
    return out


def generate_world(seed: int = 7, per_category: int = 60, n_queries: int = 220, judged_per_query: int = 8,
                   label_noise: float = 0.04) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Products and judged pairs (contracts ``products`` and ``query_product_labels``), reproducible per seed.

    Candidates per query mimic a retrieval system: mostly the query's category (where the hard distinctions
    live), some from other categories. ``label_noise`` flips that share of labels to an adjacent level, as human
    raters disagree.
    """
    rng = np.random.default_rng(seed)
    products = _products(rng, per_category)
    by_cat = {c: g.to_dict("records") for c, g in products.groupby("category")}
    everyone = products.to_dict("records")
    seen: set[str] = set()
    rows = []
    for text, qtype, intent in _queries(rng, n_queries):
        qid = "q-" + "-".join(text.lower().split())
        if qid in seen:
            continue
        seen.add(qid)
        same = by_cat[intent.category]
        n_same = min(len(same), max(1, int(round(judged_per_query * 0.75))))
        picks = list(rng.choice(len(same), size=n_same, replace=False))
        cands = [same[i] for i in picks]
        while len(cands) < judged_per_query:
            p = everyone[int(rng.integers(len(everyone)))]
            if p["product_id"] not in {c["product_id"] for c in cands}:
                cands.append(p)
        for p in cands:
            level, _ = judge(intent, p)
            if rng.random() < label_noise:
                level = int(np.clip(level + rng.choice([-1, 1]), 1, 4))
            rows.append(dict(query_id=qid, query=text, product_id=p["product_id"], label=level,
                             raw_label=str(level), label_source="world", query_type=qtype, source="world"))
    labels = pd.DataFrame(rows)
    labels["label"] = labels["label"].astype("int32")
    return products, labels

