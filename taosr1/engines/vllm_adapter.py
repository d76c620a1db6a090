"""vLLM backend: every call into vLLM lives in this module (its API churns).

* ``label_probs``: ``max_tokens=1`` with ``SamplingParams.logprob_token_ids`` = the four label tokens (plain
  ``logprobs=k`` silently misses labels outside the top-k), renormalised over the labels; prefix caching computes
  the long shared instruction once.
* ``label_probs`` with ``label_readout="classify"``: a pooling classifier whose weights are the LM head's four label
  rows (``convert="classify"``, ``classifier_from_token``, ``method="no_post_processing"``), read with
  ``LLM.classify``: one prefill, no sampler, exactly the label tokens' softmax. Such an engine does not sample.
* ``sample``: one request per prompt with ``n`` samples and the sampled tokens' logprobs.

In a Spark Python worker the engine core runs in-process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``): no spawned
process to orphan if the task dies, and no ``__main__`` guard needed. On CPU builds vLLM seeds only at engine
construction (a per-request seed kills the CPU worker), so ``sample`` reproduces per fresh engine there and per
request on GPU.
"""

from __future__ import annotations

import os

import numpy as np

from taosr1.engines.base import Engine, Sample, renormalise
from taosr1.engines.config import VLLMConfig
from taosr1.model.loading import check_model_dir, load_tokenizer
from taosr1.prompts.template import label_token_ids


def _on_cpu(config: VLLMConfig) -> bool:
    if config.device == "cpu":
        return True
    try:
        import torch

        return not torch.cuda.is_available()
    except ImportError:  # pragma: no cover - torch always comes with vllm
        return True


class VLLMEngine(Engine):
    """In-process ``vllm.LLM``."""

    def __init__(self, config: VLLMConfig) -> None:
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
        self.cpu = _on_cpu(config)
        self.per_prompt_seeds = not self.cpu
        if self.cpu:
            cores = os.cpu_count() or 1
            os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{cores - 1}" if cores > 1 else "0")
        from vllm import LLM

        self.config = config
        self.tokenizer = load_tokenizer(config.model_path)
        self.label_ids = label_token_ids(self.tokenizer)
        from taosr1.model.precision import resolve_dtype

        self.dtype = resolve_dtype(config.dtype, config.device)
        memory = ({"kv_cache_memory_bytes": int(config.cpu_kv_cache_gib * 2**30)} if self.cpu
                  else {"gpu_memory_utilization": config.gpu_memory_utilization})
        self.classify = config.label_readout == "classify"
        if self.classify:  # the LM head's four label rows become a classifier's weights: softmax = renormalised
            tokens = self.tokenizer.convert_ids_to_tokens(self.label_ids)
            memory |= {"runner": "pooling", "convert": "classify",
                       "hf_overrides": {"classifier_from_token": tokens, "method": "no_post_processing"}}
        self.llm = LLM(model=str(check_model_dir(config.model_path)), dtype=self.dtype, seed=config.seed,
                       max_model_len=config.max_model_len, enable_prefix_caching=config.prefix_cache,
                       **memory,
                       enforce_eager=config.enforce_eager or self.cpu, trust_remote_code=False,
                       **({} if self.classify else {"max_logprobs": max(20, len(self.label_ids) + 1)}))

    def label_probs(self, prompts: list[str]) -> np.ndarray:
        if self.classify:
            outs = self.llm.classify([{"prompt": p} for p in prompts], use_tqdm=False)
            probs = np.asarray([o.outputs.probs for o in outs], dtype=np.float64)
            if probs.shape != (len(prompts), len(self.label_ids)) or not np.isfinite(probs).all():
                raise RuntimeError(f"vLLM's classifier returned {probs.shape} probabilities for {len(prompts)} "
                                   f"prompts and {len(self.label_ids)} labels")
            return probs / probs.sum(axis=1, keepdims=True)
        from vllm import SamplingParams

        params = SamplingParams(max_tokens=1, temperature=0.0, logprobs=len(self.label_ids), logprob_token_ids=self.label_ids,
                                detokenize=False)
        outs = self.llm.generate([{"prompt": p} for p in prompts], params, use_tqdm=False)
        raw = np.full((len(prompts), 4), -np.inf)
        for i, out in enumerate(outs):
            step = out.outputs[0].logprobs[0]
            for j, tid in enumerate(self.label_ids):
                if tid not in step:
                    raise RuntimeError(f"vLLM returned no logprob for label token {tid} (prompt {i})")
                raw[i, j] = step[tid].logprob
        return renormalise(raw)

    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None, ignore_eos: bool = False) -> list[list[Sample]]:
        if self.classify:
            raise RuntimeError("a vLLM engine built with label_readout='classify' scores only; sample with "
                               "label_readout='logprobs'")
        from vllm import SamplingParams

        def params(s: int | None) -> SamplingParams:
            return SamplingParams(n=n, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens, logprobs=0,
                                  seed=None if self.cpu else s, ignore_eos=ignore_eos)

        # one generate over the whole batch; per-request seeds on GPU, the engine's seed on the CPU build (a
        # per-request seed kills its worker), where the batch order is kept stable instead
        sp = [params(s % (2**31)) for s in seeds] if seeds is not None and not self.cpu else params(seed)
        outs = self.llm.generate([{"prompt": p} for p in prompts], sp, use_tqdm=False)
        results = []
        for out in outs:
            row = []
            for comp in out.outputs:
                lps = [step[tid].logprob for tid, step in zip(comp.token_ids, comp.logprobs or [])]
                row.append(Sample(comp.text, [float(x) for x in lps]))
            results.append(row)
        return results

    def close(self) -> None:
        """Stop the engine core process now (left to the garbage collector it can outlive the engine, spinning
        a CPU core), then drop the engine."""
        import contextlib
        import gc

        llm = self.__dict__.pop("llm", None)
        core = getattr(getattr(llm, "llm_engine", None), "engine_core", None)
        with contextlib.suppress(Exception):
            if core is not None:
                core.shutdown()
        del llm
        gc.collect()
