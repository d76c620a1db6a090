"""OpenAI-compatible completions backend (a vLLM or SGLang fleet): concurrent, retried with backoff, timed out.

The official ``openai`` client does the retries (exponential backoff on connection errors, 429 and 5xx) and the
timeouts; this module adds concurrency (a thread pool over prompt chunks) and the label read-out: one token with
``logprob_token_ids`` = the label tokens (vLLM's extension; plain ``logprobs=k`` can miss labels outside the top k)
and ``return_tokens_as_token_ids`` so tokens come back by id, not by ambiguous text.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from taosr1.engines.base import Engine, Sample, renormalise
from taosr1.engines.config import OpenAIConfig
from taosr1.model.loading import load_tokenizer
from taosr1.prompts.template import label_token_ids

_TOKEN_ID = re.compile(r"^token_id:(\d+)$")


class OpenAIEngine(Engine):
    """Client of an OpenAI-compatible ``/v1/completions`` endpoint."""

    def __init__(self, config: OpenAIConfig) -> None:
        from openai import OpenAI

        if not config.base_url:
            raise ValueError("the openai engine needs base_url (e.g. http://host:8000/v1)")
        self.config = config
        self.tokenizer = load_tokenizer(config.model_path)
        self.label_ids = label_token_ids(self.tokenizer)
        self.client = OpenAI(base_url=config.base_url, api_key=os.environ.get(config.api_key_env, "EMPTY"),
                             max_retries=config.max_retries, timeout=config.timeout_s)
        self.model = config.served_model or self.client.models.list().data[0].id

    def _chunks(self, prompts: list[str]) -> list[list[str]]:
        bs = max(1, self.config.batch_size)
        return [prompts[i: i + bs] for i in range(0, len(prompts), bs)]

    def _map(self, fn, chunks):
        with ThreadPoolExecutor(max_workers=max(1, self.config.concurrency)) as pool:
            return list(pool.map(fn, chunks))

    def label_probs(self, prompts: list[str]) -> np.ndarray:
        def one(chunk: list[str]) -> np.ndarray:
            resp = self.client.completions.create(
                model=self.model, prompt=chunk, max_tokens=1, temperature=0.0, logprobs=len(self.label_ids),
                extra_body={"logprob_token_ids": self.label_ids, "return_tokens_as_token_ids": True})
            raw = np.full((len(chunk), 4), -np.inf)
            for choice in resp.choices:
                top = (choice.logprobs.top_logprobs or [{}])[0]
                by_id = {}
                for tok, lp in top.items():
                    m = _TOKEN_ID.match(tok)
                    by_id[int(m.group(1)) if m else self.tokenizer.convert_tokens_to_ids(tok)] = lp
                for j, tid in enumerate(self.label_ids):
                    if tid not in by_id:
                        raise RuntimeError(f"server returned no logprob for label token {tid}")
                    raw[choice.index, j] = by_id[tid]
            return raw

        parts = self._map(one, self._chunks(prompts))
        return renormalise(np.vstack(parts)) if parts else np.zeros((0, 4))

    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None, ignore_eos: bool = False) -> list[list[Sample]]:
        def one(chunk: list[str], chunk_seed: int | None) -> list[list[Sample]]:
            resp = self.client.completions.create(model=self.model, prompt=chunk, n=n, temperature=temperature,
                                                  top_p=top_p, max_tokens=max_new_tokens, logprobs=0,
                                                  seed=chunk_seed,
                                                  extra_body={"ignore_eos": True} if ignore_eos else None)
            rows: list[list[Sample]] = [[] for _ in chunk]
            for choice in sorted(resp.choices, key=lambda c: c.index):
                lps = [float(x) for x in (choice.logprobs.token_logprobs if choice.logprobs else []) if x is not None]
                rows[choice.index // n].append(Sample(choice.text, lps))
            return rows

        if seeds is not None:  # a request per prompt, each with its own seed (the server batches them anyway)
            return [part[0] for part in self._map(lambda ps: one(ps[0], ps[1]),
                                                  [([p], s % (2**31)) for p, s in zip(prompts, seeds)])]
        return [row for part in self._map(lambda ch: one(ch, seed), self._chunks(prompts)) for row in part]
