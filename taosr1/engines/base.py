"""The engine interface every stage uses.

* ``label_probs(prompts)`` → an ``(n, 4)`` array: P(4-Excellent), P(3-Related), P(2-Mismatch), P(1-Irrelevant) as
  the *next token* after each prompt, renormalised over the four labels. One forward pass, no generation: the
  post-CoT deployment of TaoSR1.
* ``sample(prompts, n, ...)`` → per prompt, ``n`` completions with their token logprobs (pass@N, GRPO rollouts).

Prompts are rendered strings (``taosr1.prompts.render_prompt`` with the engine's tokenizer).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

import numpy as np


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

    config: Any
    tokenizer: Any
    label_ids: list[int]
    #: whether ``sample(seeds=...)`` seeds each prompt on its own (then a prompt's samples do not depend on what it
    #: was batched with); engines that cannot (vLLM's CPU build) seed once per engine and keep a stable order
    per_prompt_seeds: bool = True

    @abc.abstractmethod
    def label_probs(self, prompts: list[str]) -> np.ndarray:
        """(len(prompts), 4) probabilities of levels 4, 3, 2, 1; each row sums to 1."""

    @abc.abstractmethod
    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None, ignore_eos: bool = False) -> list[list[Sample]]:
        """``n`` completions per prompt, reproducible for a fixed ``seed``; ``seeds`` (one per prompt) seeds each
        prompt on its own where the engine can (:attr:`per_prompt_seeds`). One call takes a whole batch.
        ``ignore_eos`` writes exactly ``max_new_tokens`` (benchmarks of a fixed CoT length)."""

    def close(self) -> None:
        """Free the model (engines that hold processes override this)."""


def renormalise(label_logprobs: np.ndarray) -> np.ndarray:
    """Softmax over the label axis of raw (log-)probabilities: P restricted to the label set."""
    z = label_logprobs - label_logprobs.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def prompt_seeds(prompts: list[str], seed: int) -> list[int]:
    """A seed per prompt from the run's seed and the prompt's text (stable whatever the batching)."""
    import zlib

    return [(seed * 1_000_003 + zlib.crc32(p.encode())) % (2**63) for p in prompts]
