"""Grouped-query attention without copying the KV cache, for CPU decoding.

transformers' ``sdpa`` attention repeats every key/value head to the query heads (``repeat_kv``: a full copy of
the cache per layer and step) whenever a padding mask is present, i.e. in every batched decode. PyTorch's
``scaled_dot_product_attention`` takes ``enable_gqa=True`` with a mask, so this registered implementation does the
same arithmetic without the copies: measured 1.7x faster pass@N sampling on SmolLM2-135M (9 query, 3 KV heads) on
2 CPU cores, same tokens.
"""

from __future__ import annotations

NAME = "taosr1_gqa_sdpa"
_registered = False


def _gqa_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, is_causal=None,
              **kwargs):
    import torch

    causal = attention_mask is None and query.shape[2] > 1
    out = torch.nn.functional.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask,
                                                           dropout_p=0.0, scale=scaling, is_causal=causal,
                                                           enable_gqa=key.shape[1] != query.shape[1])
    return out.transpose(1, 2).contiguous(), None


def use_gqa_attention(model) -> bool:
    """Switch an inference model on CPU to the copy-free GQA attention; ``False`` (unchanged) where it does not
    apply (no grouped heads) or the installed transformers cannot register it."""
    global _registered
    cfg = model.config
    heads, kv = getattr(cfg, "num_attention_heads", None), getattr(cfg, "num_key_value_heads", None)
    if not heads or not kv or heads == kv:
        return False
    try:
        if not _registered:
            from transformers import AttentionInterface
            from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

            AttentionInterface.register(NAME, _gqa_sdpa)
            AttentionMaskInterface.register(NAME, sdpa_mask)
            _registered = True
        model.set_attn_implementation(NAME)
    except (ImportError, AttributeError, ValueError):
        return False
    return True
