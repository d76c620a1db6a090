"""The read-out (LP) and its fine-tune (FT) on the built-in model and tiny data: every engine reads what was fitted,
the fit beats chance where the signal is plain, and the learning curve reaches MLflow."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from taosr1.engines import create_engine, engine_config
from taosr1.model.loading import load_causal_lm, load_tokenizer, prompt_variant
from taosr1.prompts import build_messages, render_prompt
from taosr1.prompts.template import label_token_ids
from taosr1.training.readout import ReadoutConfig, class_weights, fit_readout, train_readout
from taosr1.training.readout_stage import pair_prompts
from tests.helpers import job

TOLERANCE = 1e-4


def _split(pair_rows, n_train=160, n_dev=48):
    frame = pd.DataFrame(pair_rows)
    qids = sorted(frame["query_id"].unique())
    dev_q = set(qids[::5])
    dev = frame[frame["query_id"].isin(dev_q)].head(n_dev)
    train = frame[~frame["query_id"].isin(dev_q)].head(n_train)
    return train, dev


@pytest.fixture(scope="module")
def fitted(builtin_model, pair_rows, tmp_path_factory):
    """The model cut after its first decoder layer, LP, then that layer fine-tuned for one epoch, saved as a model
    folder."""
    tok, variant = load_tokenizer(builtin_model), prompt_variant(builtin_model)
    model = load_causal_lm(builtin_model, "float32")
    train, dev = _split(pair_rows)
    out = tmp_path_factory.mktemp("readout") / "lpft"
    res = train_readout(model, label_token_ids(tok), pair_prompts(train, tok, variant),
                        train["label"].to_numpy(dtype=int), pair_prompts(dev, tok, variant),
                        dev["label"].to_numpy(dtype=int),
                        ReadoutConfig(keep_layers=1, train_layers=1, epochs=1, batch_size=16, learning_rate=1e-3,
                                      curve_every=64),
                        str(out) + "-run")
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "taosr1_model.json").write_text(json.dumps({"name": "lpft", "prompt": variant}))
    return out, res, dev


def _engine_probs(backend: str, path, dev, **extra) -> np.ndarray:
    eng = create_engine(engine_config(backend=backend, model_path=str(path), **extra))
    variant = prompt_variant(path)
    prompts = [render_prompt(eng.tokenizer, build_messages(r["query"], r, "post_cot", variant))
               for r in dev.to_dict("records")]
    try:
        return eng.label_probs(prompts)
    finally:
        getattr(eng, "close", lambda: None)()


def test_the_saved_model_is_a_plain_causal_lm_with_its_own_label_rows(fitted, builtin_model):
    out, res, dev = fitted
    cfg = json.loads((out / "config.json").read_text())
    assert cfg.get("tie_word_embeddings") is False  # its own head: the label rows changed, the embedding did not
    assert cfg["num_hidden_layers"] == 1 and len(cfg.get("layer_types") or [None]) == 1  # cut after layer 1 of 2
    base = load_causal_lm(builtin_model, "float32")
    new = load_causal_lm(out, "float32")
    ids = label_token_ids(load_tokenizer(out))
    import torch

    assert torch.equal(new.get_input_embeddings().weight, base.get_input_embeddings().weight)
    assert not torch.allclose(new.get_output_embeddings().weight[ids], base.get_output_embeddings().weight[ids])
    others = [i for i in range(50) if i not in ids]
    assert torch.equal(new.get_output_embeddings().weight[others], base.get_output_embeddings().weight[others])
    # the curve: the read-out point first, then one point per 64 examples, examples seen increasing
    assert [p.examples for p in res.curve][0] == 0 and len(res.curve) >= 3
    assert all(a.examples < b.examples for a, b in zip(res.curve, res.curve[1:]))
    assert res.seconds["cache"] > 0 and res.seconds["fine_tune"] > 0


def test_hf_reads_exactly_the_fitted_probabilities(fitted):
    out, res, dev = fitted
    np.testing.assert_allclose(_engine_probs("hf", out, dev), res.dev_probs, atol=TOLERANCE)


def test_bf16_autocast_trains_a_model_hf_reads_to_bf16_precision(builtin_model, pair_rows, fitted, tmp_path):
    """``--dtype auto`` picks bf16 autocast on CPUs with bf16 instructions (cache, read-out, fine-tune); the
    weights stay float32, so the saved folder is the same plain model, and hf in float32 reads from it what the
    run measured, to bf16's precision; the read-out lands where the float32 run's did."""
    import torch

    tok, variant = load_tokenizer(builtin_model), prompt_variant(builtin_model)
    model = load_causal_lm(builtin_model, "float32")
    train, dev = _split(pair_rows)
    res = train_readout(model, label_token_ids(tok), pair_prompts(train, tok, variant),
                        train["label"].to_numpy(dtype=int), pair_prompts(dev, tok, variant),
                        dev["label"].to_numpy(dtype=int),
                        ReadoutConfig(keep_layers=1, train_layers=1, epochs=1, batch_size=16, learning_rate=1e-3,
                                      curve_every=64, bf16=True), str(tmp_path / "run"))
    assert all(p.dtype == torch.float32 for p in model.parameters())
    out = tmp_path / "lpft16"
    model.save_pretrained(out, safe_serialization=True)
    tok.save_pretrained(out)
    (out / "taosr1_model.json").write_text(json.dumps({"name": "lpft16", "prompt": variant}))
    np.testing.assert_allclose(_engine_probs("hf", out, dev, dtype="float32"), res.dev_probs, atol=0.03)
    assert abs(res.readout_dev["macro_f1"] - fitted[1].readout_dev["macro_f1"]) < 0.15


@pytest.mark.slow
@pytest.mark.parametrize("readout", ["logprobs", "classify"])
def test_vllm_reads_the_same_probabilities_as_hf(fitted, readout):
    """Both vLLM paths: one generated token's label logprobs, and the pooling classifier built from the label rows."""
    pytest.importorskip("vllm")
    out, res, dev = fitted
    np.testing.assert_allclose(_engine_probs("vllm", out, dev, label_readout=readout), res.dev_probs,
                               atol=TOLERANCE)


def test_read_out_fit_finds_a_plain_signal_and_respects_absent_levels():
    """Features where one direction carries the level: the no-intercept fit (an LM head has no bias) recovers it
    on held-out rows; a level absent from training is never predicted."""
    rng = np.random.default_rng(0)
    n, d = 600, 16
    gold = rng.integers(1, 5, n)
    x = rng.normal(0, 1, (n, d)) + 5.0  # a large shared offset, as hidden states have
    x[:, 0] += 3.0 * gold
    w, c, m = fit_readout(x[:400], gold[:400], x[400:], gold[400:], (0.1, 1.0))
    assert w.shape == (4, d) and m["macro_f1"] > 0.6 and m["spearman"] > 0.8
    three = gold[:400] != 1
    w3, _, _ = fit_readout(x[:400][three], gold[:400][three], x[400:], gold[400:], (1.0,))
    assert ((x[400:] @ w3.T).argmax(axis=1) != 3).all()  # column 3 = level 1


def test_class_weights_balance_the_levels():
    w = class_weights(np.array([4, 4, 4, 3, 2, 1]))
    assert w[0] == pytest.approx(0.5) and w[1] == w[2] == w[3] == pytest.approx(1.5)
    assert class_weights(np.array([4, 3]))[2:].tolist() == [0.0, 0.0]


def test_readout_stage_logs_its_learning_curve_to_mlflow(spark, store, builtin_model, tmp_path):
    """``taosr1 train readout`` on a world corpus: the read-out-only and fine-tuned folders, the curve in the
    card and as an MLflow metric series (step = examples seen)."""
    mlflow = pytest.importorskip("mlflow")
    job(store, "load_labels", source="world")
    job(store, "build_sft_corpus", source="world", corpus_id="c1", teacher="knowledge")
    rep = job(store, "train_readout", data="c1", base=builtin_model, out=str(tmp_path / "lpft"),
              readout_out=str(tmp_path / "ro"), train_layers=1, epochs=1, max_pairs=200, curve_pairs=60,
              curve_every=64, learning_rate=1e-3)
    card = json.loads((tmp_path / "lpft" / "taosr1_model.json").read_text())
    assert card["stage"] == "readout_ft" and card["training_source"] == "world" and card["completion"] == "label"
    assert json.loads((tmp_path / "ro" / "taosr1_model.json").read_text())["stage"] == "readout"
    curve = rep.info["curve"]
    assert curve[0]["examples"] == 0 and len(curve) >= 3
    from taosr1.tracking import tracking_uri

    client = mlflow.MlflowClient(tracking_uri=tracking_uri(store.root))
    run = next(r for r in client.search_runs([client.get_experiment_by_name("taosr1").experiment_id])
               if r.data.tags["taosr1.stage"] == "train_readout")
    hist = client.get_metric_history(run.info.run_id, "curve.dev_macro_f1")
    assert [h.step for h in hist] == [p["examples"] for p in curve]
    assert "readout_macro_f1" in run.data.metrics


def test_a_delta_adapter_carries_the_read_out_model_in_a_few_tensors(fitted, builtin_model, tmp_path):
    """What the demo ships: only the tensors LP-FT changed (float16) and the label rows; applied to its base it
    reads the fitted probabilities (up to float16 rounding); refused on another base."""
    from taosr1.model.adapters import ADAPTER_CARD, DELTA_FILE, apply_adapter, write_delta_adapter

    out, res, dev = fitted
    ad = write_delta_adapter(builtin_model, out, tmp_path / "ad", name="t", data="tiny", training={})
    card = json.loads((ad / ADAPTER_CARD).read_text())
    assert card["kind"] == "delta" and "label_rows" in card["tensors"]
    assert card["keep_layers"] == 1 < _last_layer(builtin_model) + 1  # the cut travels with the adapter
    assert all(".layers." not in k or ".layers.0." in k for k in card["tensors"])  # only the kept, trained layer
    applied = apply_adapter(builtin_model, ad, tmp_path / "applied")
    np.testing.assert_allclose(_engine_probs("hf", applied, dev), res.dev_probs, atol=5e-3)
    assert (ad / DELTA_FILE).stat().st_size < (out / "model.safetensors").stat().st_size / 2


def _last_layer(model_dir) -> int:
    return json.loads((__import__("pathlib").Path(model_dir) / "config.json").read_text())["num_hidden_layers"] - 1
