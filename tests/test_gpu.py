"""The CUDA paths, for a machine with a GPU (``pytest -m gpu``; skipped elsewhere). ``bench/gpu_check.py`` runs the
loop's GPU settings end to end and times them; these check that the flags reach the GPU and agree with the CPU."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from taosr1.engines import create_engine, engine_config
from taosr1.prompts import build_messages, render_prompt


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not _cuda(), reason="needs a CUDA GPU")]
needs_vllm = pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="needs vllm")


def _probs(config, rows):
    engine = create_engine(config)
    prompts = [render_prompt(engine.tokenizer, build_messages(r["query"], r)) for r in rows]
    return engine.label_probs(prompts)


def test_hf_on_cuda_reads_the_cpu_probabilities(builtin_model, pair_rows):
    rows = pair_rows[:64]
    cpu = _probs(engine_config(model_path=builtin_model, dtype="float32"), rows)
    gpu = _probs(engine_config(model_path=builtin_model, dtype="float32", device="cuda"), rows)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)


@needs_vllm
@pytest.mark.parametrize("readout", ["logprobs", "classify"])
def test_vllm_on_cuda_reads_the_cpu_probabilities(builtin_model, pair_rows, readout):
    rows = pair_rows[:64]
    cpu = _probs(engine_config(model_path=builtin_model, dtype="float32"), rows)
    gpu = _probs(engine_config(backend="vllm", model_path=builtin_model, dtype="float32", device="cuda",
                               label_readout=readout, gpu_memory_utilization=0.3), rows)
    np.testing.assert_allclose(gpu, cpu, atol=1e-3)


@needs_vllm
def test_grpo_with_use_vllm_generates_with_vllm(builtin_model, tmp_path):
    """``--use-vllm`` reaches GRPOConfig before the trainer is built, so TRL builds its colocated vLLM engine."""
    from datasets import Dataset

    from taosr1.training.trainers import TrainParams, grpo_trainer

    cfg = TrainParams(data="r", base=builtin_model, out=str(tmp_path / "o"), use_vllm=True, cpu=False,
                      max_steps=1, num_generations=2, max_completion_length=8).train_config()
    ds = Dataset.from_list([{"prompt": [{"role": "user", "content": "rate"}], "gold_label": 4}] * 4)
    trainer = grpo_trainer(builtin_model, ds, str(tmp_path / "run"), cfg)
    assert trainer.args.use_vllm and getattr(trainer, "llm", None) is not None
