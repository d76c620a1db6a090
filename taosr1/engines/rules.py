"""The knowledge teacher as an engine: rules over the pair's fields, no weights, milliseconds per pair.

It reads query and product back from the rendered prompt, judges with :func:`taosr1.knowledge.teacher.teach` and
answers in the engine interface: ``label_probs`` puts ``confidence`` on the rules' label, the rest spread evenly;
``sample`` writes the post-CoT trace, and at temperature > 0 a sample moves one level away from the rules' label
with probability ``flip_rate × temperature`` (seeded per prompt and sample), so pass@N sees right and wrong answers
the way a real policy's samples mix. Tests and dry runs of every engine stage use it where no model is needed.
"""

from __future__ import annotations

import math
import zlib

import numpy as np

from taosr1.engines.base import Engine, Sample
from taosr1.engines.config import RulesConfig
from taosr1.labels import LEVELS


class RulesEngine(Engine):
    """Deterministic rules (the knowledge teacher) behind the engine interface."""

    def __init__(self, config: RulesConfig) -> None:
        self.config = config
        self.tokenizer = None
        self.label_ids = []

    def _judge(self, prompt: str):
        from taosr1.knowledge.teacher import teach
        from taosr1.prompts.template import parse_pair

        query, product = parse_pair(prompt)
        return teach(query, product)

    def label_probs(self, prompts: list[str]) -> np.ndarray:
        out = np.full((len(prompts), 4), (1.0 - self.config.confidence) / 3)
        for i, p in enumerate(prompts):
            level, _ = self._judge(p)
            out[i, LEVELS.index(level)] = self.config.confidence
        return out

    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None, ignore_eos: bool = False) -> list[list[Sample]]:
        from taosr1.prompts.cot import format_completion

        base = self.config.seed if seed is None else seed
        results = []
        for i, p in enumerate(prompts):
            level, steps = self._judge(p)
            row = []
            for k in range(n):
                rng = np.random.default_rng([seeds[i], k] if seeds is not None else [base, zlib.crc32(p.encode()), k])
                lv = level
                if temperature > 0 and rng.random() < min(1.0, self.config.flip_rate * temperature):
                    lv = int(min(4, max(1, level + (1 if rng.random() < 0.5 else -1))))
                    lv = lv if lv != level else (level - 1 if level > 1 else level + 1)
                text = format_completion(lv, steps, "post_cot")
                words = text.split()[: max_new_tokens]
                p_tok = self.config.confidence if lv == level else (1 - self.config.confidence) / 3
                row.append(Sample(" ".join(words) if len(words) < len(text.split()) else text,
                                  [math.log(p_tok)] + [0.0] * (len(words) - 1)))
            results.append(row)
        return results
