"""Hugging Face transformers backend: batched, left-padded, ``inference_mode``, CPU or CUDA.

``label_probs`` shares prefixes the way the paper's serving does: the instruction's KV cache is computed once and
kept across batches, the pairs of one query (rows arrive grouped by query) run the query's tokens once, and each
pair runs only its own product tokens; the LM head is applied to one position per row.
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


MIN_BASE = 16  # a shared base shorter than this is not worth a cache
MIN_GROUP = 4  # rows sharing at least this many tokens past the base run them once (a query's pairs)


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
        from taosr1.engines.attention import use_gqa_attention

        self.gqa_attention = not config.device.startswith("cuda") and use_gqa_attention(self.model)
        self.label_ids = label_token_ids(self.tokenizer)
        self._prefix: tuple[tuple[int, ...], object] | None = None  # (prefix ids, cache for batch 1)
        #: tokens the model ran (with padding) and needed, and rows scored: what benchmarks turn into FLOPs
        self.stats = {"tokens_run": 0, "tokens_useful": 0, "rows": 0}

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
        self._check_lengths([len(s) for s in ids])
        with torch.inference_mode():
            base = self._shared_base(ids) if self.config.prefix_cache else None
            if base is None:
                return self._plain(ids)
            return self._with_prefix(ids, *base)

    def _plain(self, ids: list[list[int]]) -> np.ndarray:
        torch = self.torch
        width = max(len(s) for s in ids)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([[pad] * (width - len(s)) + s for s in ids], device=self.config.device)
        mask = torch.tensor([[0] * (width - len(s)) + [1] * len(s) for s in ids], device=self.config.device)
        logits = self.model(input_ids=input_ids, attention_mask=mask, logits_to_keep=1).logits[:, -1, :]
        self._count(len(ids) * width, sum(map(len, ids)), len(ids))
        return self._to_probs(logits)

    def _count(self, run: int, useful: int, rows: int) -> None:
        self.stats["tokens_run"] += run
        self.stats["tokens_useful"] += useful
        self.stats["rows"] += rows

    def _shared_base(self, ids: list[list[int]]) -> tuple[int, object] | None:
        """``(m, cache)``: the first ``m`` tokens every row starts with (the instruction), computed once and kept
        across batches; a later batch that shares only part of the cached prefix crops it (no recompute)."""
        cap = min(len(s) for s in ids) - 1  # every row keeps ≥1 token of its own
        lcp = min(common_prefix(ids), cap)
        if self._prefix is not None:
            key, cache = self._prefix
            m = min(common_prefix([list(key), ids[0][:lcp]]), lcp)
            if m >= MIN_BASE:
                if m < len(key):
                    cache.crop(m - len(key))  # negative: drop that many tokens from the end
                    self._prefix = (key[:m], cache)
                return m, cache
        if lcp < MIN_BASE:
            return None
        torch = self.torch
        out = self.model(input_ids=torch.tensor([ids[0][:lcp]], device=self.config.device), use_cache=True,
                         logits_to_keep=1)
        self._count(lcp, lcp, 0)
        self._prefix = (tuple(ids[0][:lcp]), out.past_key_values)
        return lcp, out.past_key_values

    def _with_prefix(self, ids: list[list[int]], m: int, base_cache) -> np.ndarray:
        """Two stages on top of the shared base's cache. Stage A runs, once per *group* of rows that share more
        than the base (a query's pairs: the instruction and the query are one prefix), the group's shared tokens
        (a lone row runs its own first tokens in that slot); stage B expands that cache to every row and runs
        each row's remaining tokens. Padding sits in the middle, masked; positions are each row's true ones."""
        torch, dev = self.torch, self.config.device
        pad = self.tokenizer.pad_token_id
        rest = [s[m:] for s in ids]
        order = sorted(range(len(ids)), key=lambda i: rest[i])
        groups: list[list[int]] = []
        for i in order:
            if groups and self.config.share_query_prefix and common_prefix([rest[groups[-1][0]], rest[i]]) >= MIN_GROUP:
                groups[-1].append(i)
            else:
                groups.append([i])
        shared = [min(common_prefix([rest[i] for i in g]), min(len(rest[i]) for i in g) - 1) if len(g) > 1 else 0
                  for g in groups]
        width_a = max(shared)
        glen = [L if len(g) > 1 else min(width_a, len(rest[g[0]]) - 1) for g, L in zip(groups, shared)]
        cache = copy.deepcopy(base_cache)
        cache.batch_repeat_interleave(len(groups))
        if width_a:
            inp = torch.tensor([rest[g[0]][:L] + [pad] * (width_a - L) for g, L in zip(groups, glen)], device=dev)
            mask_a = torch.tensor([[1] * (m + L) + [0] * (width_a - L) for L in glen], device=dev)
            pos_a = torch.arange(m, m + width_a, device=dev).unsqueeze(0).expand(len(groups), -1)
            self.model.base_model(input_ids=inp, attention_mask=mask_a, position_ids=pos_a, past_key_values=cache,
                                  use_cache=True)
            self._count(len(groups) * width_a, sum(glen), 0)
        group_of = [0] * len(ids)
        for gi, g in enumerate(groups):
            for i in g:
                group_of[i] = gi
        cache.batch_select_indices(torch.tensor(group_of, device=dev))
        own = [rest[i][glen[group_of[i]]:] for i in range(len(ids))]
        width_b = max(len(s) for s in own)
        inp = torch.tensor([s + [pad] * (width_b - len(s)) for s in own], device=dev)
        mask = torch.tensor([[1] * (m + glen[group_of[i]]) + [0] * (width_a - glen[group_of[i]]) + [1] * len(s)
                             + [0] * (width_b - len(s)) for i, s in enumerate(own)], device=dev)
        start = torch.tensor([m + glen[group_of[i]] for i in range(len(ids))], device=dev)
        positions = start.unsqueeze(1) + torch.arange(width_b, device=dev).unsqueeze(0)
        hidden = self.model.base_model(input_ids=inp, attention_mask=mask, position_ids=positions,
                                       past_key_values=cache, use_cache=True).last_hidden_state
        self._count(len(ids) * width_b, sum(map(len, own)), len(ids))
        last = torch.tensor([len(s) - 1 for s in own], device=dev)
        h = hidden[torch.arange(len(ids), device=dev), last]
        logits = self.model.get_output_embeddings()(h)
        return self._to_probs(logits)

    def _to_probs(self, logits) -> np.ndarray:
        lp = self.torch.log_softmax(logits.float(), dim=-1)[:, self.label_ids]
        return renormalise(lp.cpu().numpy().astype(np.float64))

    # -- sampling ---------------------------------------------------------------------------------------------
    def _check_lengths(self, lengths: list[int]) -> None:
        """A prompt longer than ``max_model_len`` is refused, as vLLM refuses it (a row error, never truncated)."""
        too_long = [i for i, n in enumerate(lengths) if n > self.config.max_model_len]
        if too_long:
            raise ValueError(f"prompt {too_long[0]} has {lengths[too_long[0]]} tokens > max_model_len "
                             f"{self.config.max_model_len}")

    def sample(self, prompts: list[str], n: int = 5, temperature: float = 1.0, top_p: float = 1.0,
               max_new_tokens: int = 128, seed: int | None = None,
               seeds: list[int] | None = None, ignore_eos: bool = False) -> list[list[Sample]]:
        """Batched sampling with a generator per (prompt, sample): the same prompt and seed give the same samples
        whatever it is batched with (transformers' ``generate`` draws from one global generator, so it cannot)."""
        seeds = seeds if seeds is not None else prompt_seeds(prompts, self.config.seed if seed is None else seed)
        per_call = max(1, self.config.batch_size // max(1, n))
        out: list[list[Sample]] = []
        for i in range(0, len(prompts), per_call):
            out += self._sample_batch(prompts[i: i + per_call], seeds[i: i + per_call], n, temperature, top_p,
                                      max_new_tokens, ignore_eos)
        return out

    def _sample_batch(self, prompts: list[str], seeds: list[int], n: int, temperature: float, top_p: float,
                      max_new_tokens: int, ignore_eos: bool = False) -> list[list[Sample]]:
        """Each prompt is prefilled once and its cache repeated ``n`` times; a finished row leaves the batch (its
        cache rows are dropped), so the decoder only runs the samples still writing."""
        torch, dev, tok = self.torch, self.config.device, self.tokenizer
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False, padding_side="left")
        self._check_lengths([int(v) for v in enc["attention_mask"].sum(dim=1)])
        rows = len(prompts) * n
        gens = [torch.Generator().manual_seed(int(s) * 131 + k) for s in seeds for k in range(n)]
        eos = -1 if ignore_eos else tok.eos_token_id
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
