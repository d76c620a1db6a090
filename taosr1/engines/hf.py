"""Hugging Face transformers backend: batched, left-padded, ``inference_mode``, CPU or CUDA.

``label_probs`` computes the shared instruction prefix's KV cache once and reuses it for every batch: only each
pair's own tokens are run, and the LM head is applied to one position per row.
"""

from __future__ import annotations

import copy

import numpy as np

from taosr1.engines.base import Engine, Sample, renormalise
from taosr1.engines.config import HFConfig
from taosr1.model.loading import load_causal_lm, load_tokenizer
from taosr1.prompts.template import label_token_ids


def common_prefix(seqs: list[list[int]]) -> int:
    """Length of the longest token prefix shared by every sequence."""
    if not seqs:
        return 0
    first = seqs[0]
    n = min(len(s) for s in seqs)
    for i in range(n):
        t = first[i]
        if any(s[i] != t for s in seqs):
            return i
    return n


class HFEngine(Engine):
    """transformers ``AutoModelForCausalLM`` on CPU or CUDA."""

    def __init__(self, config: HFConfig) -> None:
        import torch

        self.config = config
        self.torch = torch
        if config.torch_threads:
            torch.set_num_threads(config.torch_threads)
        self.tokenizer = load_tokenizer(config.model_path)
        self.model = load_causal_lm(config.model_path, config.dtype, config.device)
        self.label_ids = label_token_ids(self.tokenizer)
        self._prefix: tuple[tuple[int, ...], object] | None = None  # (prefix ids, cache for batch 1)

    # -- label probabilities ----------------------------------------------------------------------------------
    def label_probs(self, prompts: list[str]) -> np.ndarray:
        out = np.zeros((len(prompts), 4))
        bs = self.config.batch_size
        for i in range(0, len(prompts), bs):
            out[i: i + bs] = self._label_probs_batch(prompts[i: i + bs])
        return out

    def _label_probs_batch(self, prompts: list[str]) -> np.ndarray:
        torch = self.torch
        ids = [self.tokenizer.encode(p, add_special_tokens=False) for p in prompts]
        too_long = [i for i, s in enumerate(ids) if len(s) > self.config.max_model_len]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {len(ids[too_long[0]])} tokens > max_model_len "
                             f"{self.config.max_model_len}")
        with torch.inference_mode():
            plen = common_prefix(ids) - 1 if self.config.prefix_cache else 0  # keep ≥1 token per row
            if plen >= 16:
                return self._with_prefix(ids, plen)
            return self._plain(ids)

    def _plain(self, ids: list[list[int]]) -> np.ndarray:
        torch = self.torch
        width = max(len(s) for s in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in ids], device=self.config.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in ids], device=self.config.device)
        logits = self.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
        return self._to_probs(logits)

    def _prefix_cache(self, prefix: list[int]):
        key = tuple(prefix)
        if self._prefix is None or self._prefix[0] != key:
            torch = self.torch
            out = self.model(input_ids=torch.tensor([prefix], device=self.config.device), use_cache=True,
                             logits_to_keep=1)
            self._prefix = (key, out.past_key_values)
        return self._prefix[1]

    def _with_prefix(self, ids: list[list[int]], plen: int) -> np.ndarray:
        """Run only each row's suffix on top of the shared prefix's cache (right-padded; gather the last token)."""
        torch = self.torch
        cache = copy.deepcopy(self._prefix_cache(ids[0][:plen]))
        cache.batch_repeat_interleave(len(ids))
        suffixes = [s[plen:] for s in ids]
        width = max(len(s) for s in suffixes)
        pad = self.tokenizer.pad_token_id
        dev = self.config.device
        input_ids = torch.tensor([s + [pad] * (width - len(s)) for s in suffixes], device=dev)
        mask = torch.tensor([[1] * plen + [1] * len(s) + [0] * (width - len(s)) for s in suffixes], device=dev)
        positions = torch.arange(plen, plen + width, device=dev).unsqueeze(0).expand(len(ids), -1)
        hidden = self.model.base_model(input_ids=input_ids, attention_mask=mask, position_ids=positions,
                                       past_key_values=cache, use_cache=True).last_hidden_state
        last = torch.tensor([len(s) - 1 for s in suffixes], device=dev)
        h = hidden[torch.arange(len(ids), device=dev), last]
        logits = self.model.get_output_embeddings()(h)
        return self._to_probs(logits)

    def _to_probs(self, logits) -> np.ndarray:
        lp = self.torch.log_softmax(logits.float(), dim=-1)[:, self.label_ids]
        return renormalise(lp.cpu().numpy().astype(np.float64))

    # -- sampling ---------------------------------------------------------------------------------------------
    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None) -> list[list[Sample]]:
        torch = self.torch
        results: list[list[Sample]] = []
        bs = max(1, self.config.batch_size // max(1, n))
        gen = seed if seed is not None else self.config.seed
        for i in range(0, len(prompts), bs):
            torch.manual_seed(gen + i)  # reproducible per call and batch, whatever ran before
            chunk = prompts[i: i + bs]
            enc = self.tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False,
                                 padding_side="left").to(self.config.device)
            with torch.inference_mode():
                out = self.model.generate(**enc, do_sample=temperature > 0, temperature=max(temperature, 1e-5),
                                          top_p=top_p, top_k=0, max_new_tokens=max_new_tokens,
                                          num_return_sequences=n, return_dict_in_generate=True, output_scores=True,
                                          pad_token_id=self.tokenizer.pad_token_id,
                                          eos_token_id=self.tokenizer.eos_token_id)
            scores = self.model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
            new = out.sequences[:, enc["input_ids"].shape[1]:]
            for j in range(len(chunk)):
                row = []
                for k in range(n):
                    r = j * n + k
                    toks = new[r].tolist()
                    keep = len(toks)
                    if self.tokenizer.eos_token_id in toks:
                        keep = toks.index(self.tokenizer.eos_token_id) + 1
                    text = self.tokenizer.decode(toks[:keep], skip_special_tokens=True)
                    row.append(Sample(text, [float(x) for x in scores[r, :keep].tolist()]))
                results.append(row)
        return results
