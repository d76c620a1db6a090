"""The sample world, the label mappings and the input sources."""

from __future__ import annotations

import pandas as pd
import pytest

from taosr1 import labels as L
from taosr1.data.world import CATALOG, Intent, generate_world, judge


def test_world_is_reproducible_and_covers_every_level_and_query_kind():
    p1, l1 = generate_world(seed=3)
    p2, l2 = generate_world(seed=3)
    pd.testing.assert_frame_equal(l1, l2)
    pd.testing.assert_frame_equal(p1.drop(columns="attributes"), p2.drop(columns="attributes"))
    assert set(l1["label"]) == {1, 2, 3, 4}
    assert {"negation", "alternative", "qa", "knowledge", "attribute", "plain"} <= set(l1["query_type"])
    assert l1.duplicated(["query_id", "product_id"]).sum() == 0
    assert set(l1["product_id"]) <= set(p1["product_id"])
    _, other = generate_world(seed=4)
    assert not other.equals(l1)


def _product(cat, brand, price, **attrs):
    return {"category": cat, "brand": brand, "price": price, "attributes": attrs}


DRILLS = "Tools > Power Tools > Drills"


@pytest.mark.parametrize("intent,product,level", [
    (Intent(DRILLS), _product("Outdoor > Grills", "Weber", 400, fuel="gas"), 1),
    (Intent(DRILLS, exclude={"power_source": "corded"}), _product(DRILLS, "Ryobi", 80, power_source="corded"), 2),
    (Intent(DRILLS, exclude={"power_source": "corded"}), _product(DRILLS, "Ryobi", 80, power_source="cordless"), 4),
    (Intent(DRILLS, alternative_to="DeWalt", max_price=160), _product(DRILLS, "DeWalt", 150), 2),
    (Intent(DRILLS, alternative_to="DeWalt", max_price=160), _product(DRILLS, "Makita", 190), 3),
    (Intent(DRILLS, alternative_to="DeWalt", max_price=160), _product(DRILLS, "Ryobi", 90), 4),
    (Intent(DRILLS, key={"power_source": "cordless"}, soft={"voltage": "20V"}),
     _product(DRILLS, "Ryobi", 90, power_source="cordless", voltage="12V"), 3),
    (Intent(DRILLS, key={"power_source": "cordless"}), _product(DRILLS, "Ryobi", 90, power_source="corded"), 2),
    (Intent(DRILLS, brand="Makita"), _product(DRILLS, "Ryobi", 90), 2),
])
def test_judging_rules(intent, product, level):
    assert judge(intent, product)[0] == level


def test_catalog_keys_are_attributes():
    for spec in CATALOG.values():
        assert set(spec["key"]) <= set(spec["attrs"])


@pytest.mark.parametrize("mean,level", [(3.0, 4), (2.75, 4), (2.67, 3), (2.33, 3), (2.25, 3), (2.0, 2),
                                         (1.67, 2), (1.5, 2), (1.33, 1), (1.0, 1)])
def test_homedepot_mapping(mean, level):
    assert L.from_homedepot_mean(mean) == level


def test_label_mappings_reject_bad_values():
    with pytest.raises(ValueError, match="mean in \\[1, 3\\]"):
        L.from_homedepot_mean(3.5)
    with pytest.raises(ValueError, match="E, S, C, I"):
        L.from_esci("X")
    assert [L.from_esci(x) for x in "ESCI"] == [4, 3, 2, 1]
    assert [L.from_three_level(x) for x in (3, 2, 1)] == [4, 3, 1]
    assert L.LABEL_TEXT[4] == "4-Excellent" and L.TIER_OF_LEVEL[2] == "Mid"


def test_homedepot_source_in_the_input_contract(homedepot):
    products, labels = homedepot
    assert len(labels) == 18935 and labels["query_id"].nunique() == 3000
    assert set(labels["label"]) == {1, 2, 3, 4}
    assert products["product_id"].is_unique
    assert set(labels["product_id"]) <= set(products["product_id"])
    assert (labels["label_source"] == "homedepot_mean3").all()


def test_user_source_names_a_missing_column(tmp_path, world):
    from taosr1.data.sources import load_source
    from taosr1.errors import InputError

    products, labels = world
    products.drop(columns=["title"]).to_parquet(tmp_path / "p.parquet")
    labels.to_parquet(tmp_path / "l.parquet")
    with pytest.raises(InputError, match="table 'products' has no column 'title'"):
        load_source("user", products_path=str(tmp_path / "p.parquet"), labels_path=str(tmp_path / "l.parquet"))


def test_a_hostile_user_set_is_reported_in_one_pass_with_row_numbers(tmp_path):
    """NUL, newline and DEL in ids, a 2 MiB title, a conflicting pair: every problem at once, each with its 1-based
    row; ``3`` and ``3.0`` on one pair are the same label, not a conflict."""
    from taosr1.data.user_set import user_set
    from taosr1.errors import InputError

    rows = [("drill", "u-c\x00tl", "Drill A", "3"), ("drill", "u-c", "Drill B", "3"),
            ("saw", "p\nq", "Saw", "2"), ("saw", "p\x7fq", "Saw 2", "2"), ("hammer", "h1", "x" * (2 << 20), "4"),
            ("nail", "n1", "Nails", "3"), ("nail", "n1", "Nails", "3.0"), ("nail", "n1", "Nails", "2")]
    path = tmp_path / "ours.csv"
    pd.DataFrame(rows, columns=["query", "product_id", "title", "label"]).to_csv(path, index=False)
    with pytest.raises(InputError) as e:
        user_set(str(path), "ours")
    msg = str(e.value)
    assert "5 problem(s)" in msg, msg
    assert "row 1: product_id 'u-c\\x00tl' contains the control character U+0000" in msg
    assert "row 3: product_id 'p\\nq' contains the control character U+000A" in msg
    assert "row 4: product_id 'p\\x7fq' contains the control character U+007F" in msg
    assert "row 5: title is 2,097,152 characters; the cap is 1,000" in msg
    assert "row 8: pair ('nail', n1) has label 2, but row 6 gave it 3" in msg
    ok = pd.DataFrame(rows[5:7], columns=["query", "product_id", "title", "label"])
    ok.to_csv(path, index=False)
    products, labels = user_set(str(path), "ours")
    assert len(labels) == 1 and labels["label"].iloc[0] == 3
