"""Pairs/s of label-only scoring (``label_probs``: one forward pass) vs CoT generation (``sample``) per engine.

    python bench/engine_bench.py --pairs 256 --cot-tokens 64 [--engines hf,vllm] [--model DIR]

Same rows, same model, each engine warmed up first. The ratio column is the speed-up of label-only scoring, the
paper's post-CoT deployment argument: the CoT is never decoded online.
"""

from __future__ import annotations

import argparse
import tempfile
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--pairs", type=int, default=256)
    ap.add_argument("--cot-tokens", type=int, default=64)
    ap.add_argument("--engines", default="hf,vllm")
    ap.add_argument("--model", default=None, help="model folder (default: build the built-in model)")
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()

    from _common import print_table

    from taosr1.data.sources import load_source
    from taosr1.engines import create_engine, engine_config
    from taosr1.model.builtin import BuiltinConfig, build_builtin_model, catalog_texts
    from taosr1.prompts import build_messages, render_prompt

    products, labels = load_source("world")
    model = args.model or str(build_builtin_model(catalog_texts(products, labels), tempfile.mkdtemp() + "/m",
                                                  BuiltinConfig(warmup_steps=100)))
    prods = products.set_index("product_id").to_dict("index")
    rows = [(r.query, prods[r.product_id]) for r in labels.head(args.pairs).itertuples()]
    results = []
    for name in args.engines.split(","):
        eng = create_engine(engine_config(backend=name, model_path=model, batch_size=args.batch_size,
                                          dtype=args.dtype))
        prompts = [render_prompt(eng.tokenizer, build_messages(q, p)) for q, p in rows]
        eng.label_probs(prompts[:8])
        eng.sample(prompts[:2], n=1, max_new_tokens=4, temperature=1.0, seed=0)
        t = time.perf_counter()
        eng.label_probs(prompts)
        lp = len(prompts) / (time.perf_counter() - t)
        t = time.perf_counter()
        eng.sample(prompts, n=1, max_new_tokens=args.cot_tokens, temperature=1.0, seed=0)
        gen = len(prompts) / (time.perf_counter() - t)
        results.append([name, args.pairs, round(lp, 1), round(gen, 1), f"{lp / gen:.1f}x"])
        eng.close()
    print_table(f"label_probs vs sample ({args.cot_tokens}-token CoT), pairs/s", ["engine", "pairs",
                "label_probs pairs/s", "CoT sample pairs/s", "label-only speed-up"], results)


if __name__ == "__main__":
    main()
