"""``taosr1 model init``: a tokenizer and a small Qwen-style causal LM built from the catalog's own text.

No weights can be downloaded here, so the project makes its own: a byte-level BPE (digits split one by one, so
each label's first token is its digit) trained on product titles, descriptions, queries and the instruction, a
ChatML chat template with ``{% generation %}`` marks (for TRL's assistant-only loss), and a Qwen3 config small
enough to train on a laptop CPU. Optionally a short causal-LM warm-up over the same text. Saved as safetensors.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from taosr1.labels import LABEL_TEXT
from taosr1.model.loading import stamp_identity
from taosr1.prompts.cot import STEP_NAMES
from taosr1.prompts.template import INSTRUCTION, ORDER_HINT

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@dataclass
class BuiltinConfig:
    """Size of the built-in model; the defaults train in seconds on 2 CPU cores."""

    vocab_size: int = 4096
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    head_dim: int = 32
    max_position_embeddings: int = 2048
    warmup_steps: int = 200
    warmup_batch: int = 8
    warmup_seq_len: int = 128
    learning_rate: float = 3e-3
    seed: int = 0
    name: str = "taosr1-builtin"


def fixed_text() -> list[str]:
    """Text every built-in tokenizer sees: the instruction, order hints, labels, CoT step names."""
    steps = [f"{i}. {n}:" for i, n in enumerate(STEP_NAMES, 1)]
    return [INSTRUCTION, *ORDER_HINT.values(), *LABEL_TEXT.values(), *steps, "<think>", "</think>",
            "<query>", "</query>", "<product>", "</product>"]


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """Byte-level BPE with individual digits; returns a transformers fast tokenizer with the chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(list(texts), trainer=trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=None, eos_token="<|im_end|>",
                                   pad_token="<|pad|>", unk_token=None)
    fast.chat_template = CHAT_TEMPLATE
    fast.padding_side = "left"
    return fast


def _warmup(model, tokenizer, texts: list[str], cfg: BuiltinConfig) -> list[float]:
    """A short causal-LM pass over the text so the weights are not pure noise; returns the loss curve."""
    import torch
    from rich.progress import Progress

    ids: list[int] = []
    for t in texts:
        ids.extend(tokenizer.encode(t, add_special_tokens=False) + [tokenizer.convert_tokens_to_ids("<|endoftext|>")])
    data = torch.tensor(ids, dtype=torch.long)
    if len(data) <= cfg.warmup_seq_len + 1:
        return []
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.learning_rate)
    losses = []
    model.train()
    with Progress(transient=True) as progress:
        task = progress.add_task("model warm-up", total=cfg.warmup_steps)
        for step in range(cfg.warmup_steps):
            starts = torch.randint(0, len(data) - cfg.warmup_seq_len - 1, (cfg.warmup_batch,), generator=gen)
            batch = torch.stack([data[s: s + cfg.warmup_seq_len] for s in starts.tolist()])
            lr = cfg.learning_rate * 0.5 * (1 + math.cos(math.pi * step / cfg.warmup_steps))
            for g in opt.param_groups:
                g["lr"] = lr
            loss = model(input_ids=batch, labels=batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
            progress.advance(task)
    model.eval()
    return losses


def build_builtin_model(texts: Iterable[str], out_dir: str | Path, cfg: BuiltinConfig | None = None) -> Path:
    """Train the tokenizer, build the model, warm it up (``cfg.warmup_steps``) and save it as safetensors."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = cfg or BuiltinConfig()
    corpus = [t for t in texts if t] + fixed_text()
    tokenizer = train_tokenizer(corpus, cfg.vocab_size)
    torch.manual_seed(cfg.seed)
    config = Qwen3Config(vocab_size=len(tokenizer), hidden_size=cfg.hidden_size,
                         intermediate_size=cfg.intermediate_size, num_hidden_layers=cfg.num_hidden_layers,
                         num_attention_heads=cfg.num_attention_heads, num_key_value_heads=cfg.num_key_value_heads,
                         head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen3ForCausalLM(config)
    losses = _warmup(model, tokenizer, corpus, cfg) if cfg.warmup_steps else []
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    card = {"name": cfg.name, "created_at": dt.datetime.now(dt.timezone.utc).isoformat(), "config": asdict(cfg),
            "parameters": sum(p.numel() for p in model.parameters()), "corpus_texts": len(corpus),
            "warmup_loss_first_last": [losses[0], losses[-1]] if losses else None}
    (out / "taosr1_model.json").write_text(json.dumps(card, indent=2))
    stamp_identity(out)
    return out


def catalog_texts(products, labels) -> list[str]:
    """Titles, descriptions, categories and queries of a source (pandas frames in the input contracts)."""
    cols = [products[c].dropna().astype(str).tolist() for c in ("title", "description", "category", "brand")
            if c in products]
    return [t for col in cols for t in col] + labels["query"].dropna().astype(str).unique().tolist()
