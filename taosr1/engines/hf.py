"""Hugging Face transformers backend: batched, left-padded, ``inference_mode``, CPU or CUDA.

``label_probs`` computes the shared instruction prefix's KV cache once and reuses it for every batch: only each
pair's own tokens are run, and the LM head is applied to one position per row.
"""

from __future__ import annotations

import copy

import numpy as np

from taosr1.engines.base import Engine, Sample, prompt_seeds, renormalise
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
        from taosr1.model.precision import resolve_dtype

        self.dtype = resolve_dtype(config.dtype, config.device)
        self.model = load_causal_lm(config.model_path, self.dtype, config.device)
        if not config.device.startswith("cuda"):
            from taosr1.engines.attention import use_gqa_attention

            self.gqa_attention = use_gqa_attention(self.model)
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
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None) -> list[list[Sample]]:
        """Batched sampling with a generator per (prompt, sample): the same prompt and seed give the same samples
        whatever it is batched with (transformers' ``generate`` draws from one global generator, so it cannot)."""
        seeds = seeds if seeds is not None else prompt_seeds(prompts, self.config.seed if seed is None else seed)
        per_call = max(1, self.config.batch_size // max(1, n))
        out: list[list[Sample]] = []
        for i in range(0, len(prompts), per_call):
            out += self._sample_batch(prompts[i: i + per_call], seeds[i: i + per_call], n, temperature, top_p,
                                      max_new_tokens)
        return out

    def _sample_batch(self, prompts: list[str], seeds: list[int], n: int, temperature: float, top_p: float,
                      max_new_tokens: int) -> list[list[Sample]]:
        """Each prompt is prefilled once and its cache repeated ``n`` times; a finished row leaves the batch (its
        cache rows are dropped), so the decoder only runs the samples still writing."""
        torch, dev, tok = self.torch, self.config.device, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
        rows = len(prompts) * n
        gens = [torch.Generator().manual_seed(int(s) * 131 + k) for s in seeds for k in range(n)]
        eos = tok.eos_token_id
        tokens: list[list[int]] = [[] for _ in range(rows)]
        logps: list[list[float]] = [[] for _ in range(rows)]
        with torch.inference_mode():
            ids, mask = enc["input_ids"].to(dev), enc["attention_mask"].to(dev)
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
            cache = out.past_key_values
            if n > 1:
                cache.batch_repeat_interleave(n)
            logits_dev = out.logits[:, -1, :].repeat_interleave(n, 0)
            mask, pos = mask.repeat_interleave(n, 0), pos[:, -1:].repeat_interleave(n, 0)
            active = list(range(rows))  # the sample each batch row belongs to
            for step in range(max_new_tokens):
                logits = logits_dev.float().cpu()
                if temperature > 0:
                    logp = torch.log_softmax(logits / temperature, dim=-1)
                    if top_p < 1.0:
                        logp = _nucleus(torch, logp, top_p)
                    # inverse-CDF sampling, one uniform per row from that row's own generator (vectorised;
                    # 8x cheaper than a multinomial per row over the vocabulary)
                    u = torch.cat([torch.rand(1, generator=gens[r], dtype=torch.float64) for r in active])
                    cdf = logp.double().exp().cumsum(-1)
                    nxt = torch.searchsorted(cdf, (u * cdf[:, -1]).unsqueeze(1), right=True).squeeze(1)
                    nxt = nxt.clamp(max=logp.shape[1] - 1)
                else:
                    logp = torch.log_softmax(logits, dim=-1)
                    nxt = logits.argmax(-1)
                chosen = logp.gather(1, nxt[:, None]).squeeze(1).tolist()
                for i, r in enumerate(active):
                    tokens[r].append(int(nxt[i]))
                    logps[r].append(chosen[i])
                finished = nxt == eos
                if step == max_new_tokens - 1 or bool(finished.all()):
                    break
                if bool(finished.any()):
                    keep = (~finished).nonzero().squeeze(1)
                    cache.batch_select_indices(keep.to(dev))
                    active = [active[i] for i in keep.tolist()]
                    nxt, mask, pos = nxt[keep], mask[keep.to(dev)], pos[keep.to(dev)]
                mask = torch.cat([mask, torch.ones((len(active), 1), dtype=mask.dtype, device=dev)], dim=1)
                pos = pos + 1
                out = self.model(input_ids=nxt[:, None].to(dev), attention_mask=mask, position_ids=pos,
                                 past_key_values=cache, use_cache=True)
                logits_dev = out.logits[:, -1, :]
        res = []
        for j in range(len(prompts)):
            res.append([Sample(tok.decode(tokens[j * n + k], skip_special_tokens=True), logps[j * n + k])
                        for k in range(n)])
        return res


def _nucleus(torch, logp, top_p: float):
    """Keep the smallest set of tokens whose probability reaches ``top_p``; renormalise over it."""
    sorted_lp, idx = torch.sort(logp, descending=True, dim=-1)
    cum = sorted_lp.exp().cumsum(-1)
    drop_sorted = cum - sorted_lp.exp() >= top_p
    drop = torch.zeros_like(drop_sorted).scatter(1, idx, drop_sorted)
    return torch.log_softmax(logp.masked_fill(drop, float("-inf")), dim=-1)
