"""The engine interface every stage uses.

* ``label_probs(prompts)`` → an ``(n, 4)`` array: P(4-Excellent), P(3-Related), P(2-Mismatch), P(1-Irrelevant) as
  the *next token* after each prompt, renormalised over the four labels. One forward pass, no generation: the
  post-CoT deployment of TaoSR1.
* ``sample(prompts, n, ...)`` → per prompt, ``n`` completions with their token logprobs (pass@N, GRPO rollouts).

Prompts are rendered strings (``taosr1.prompts.render_prompt`` with the engine's tokenizer).
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

BackendName = Literal["hf", "vllm", "openai"]


class EngineConfig(BaseModel):
    """How to build an engine; hashable so a Spark worker keeps one engine per config."""

    backend: BackendName = "hf"
    model_path: str = Field(description="Local model folder (config.json + safetensors).")
    dtype: str = "float32"
    device: str = "cpu"
    batch_size: int = 16
    max_model_len: int = 1024
    prefix_cache: bool = True
    torch_threads: int | None = Field(default=None, description="CPU threads per engine; the Spark runner sets "
                                      "spark.task.cpus so concurrent tasks do not oversubscribe the cores.")
    # vllm
    gpu_memory_utilization: float = 0.9
    enforce_eager: bool = False
    seed: int = 0
    # openai-compatible servers
    base_url: str | None = None
    served_model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    concurrency: int = 8
    timeout_s: float = 60.0
    max_retries: int = 4

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Sample:
    """One sampled completion."""

    text: str
    token_logprobs: list[float] = field(default_factory=list)

    @property
    def logprob(self) -> float:
        return float(sum(self.token_logprobs))


class Engine(abc.ABC):
    """A loaded model that scores and samples."""

    config: EngineConfig
    tokenizer: Any
    label_ids: list[int]

    @abc.abstractmethod
    def label_probs(self, prompts: list[str]) -> np.ndarray:
        """(len(prompts), 4) probabilities of levels 4, 3, 2, 1; each row sums to 1."""

    @abc.abstractmethod
    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None) -> list[list[Sample]]:
        """``n`` completions per prompt, reproducible for a fixed ``seed``."""

    def close(self) -> None:
        """Free the model (engines that hold processes override this)."""


def renormalise(label_logprobs: np.ndarray) -> np.ndarray:
    """Softmax over the label axis of raw (log-)probabilities: P restricted to the label set."""
    z = label_logprobs - label_logprobs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def create_engine(config: EngineConfig) -> Engine:
    """Build the configured backend (imports only what that backend needs)."""
    if config.backend == "hf":
        from taosr1.engines.hf import HFEngine

        return HFEngine(config)
    if config.backend == "vllm":
        from taosr1.engines.vllm_adapter import VLLMEngine

        return VLLMEngine(config)
    if config.backend == "openai":
        from taosr1.engines.openai_compat import OpenAIEngine

        return OpenAIEngine(config)
    raise ValueError(f"unknown engine backend {config.backend!r} (hf | vllm | openai)")
