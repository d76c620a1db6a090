"""Loading any local checkpoint the same way: safetensors only, never remote code, never a hub download."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from taosr1.errors import ModelIdentityError

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WEIGHT_SUFFIXES = (".safetensors",)


def check_model_dir(path: str | Path) -> Path:
    """A local folder with config.json and safetensors weights; anything else is a clear error."""
    p = Path(path).expanduser()
    if not (p / "config.json").exists():
        raise FileNotFoundError(f"{p} is not a model folder (no config.json); build one with `taosr1 model init` "
                                f"or point at a local checkpoint")
    if not any(f.suffix in WEIGHT_SUFFIXES for f in p.iterdir()):
        raise ValueError(f"{p} has no .safetensors weights; convert the checkpoint to safetensors first "
                         f"(pickled .bin weights are not loaded)")
    return p.resolve()


CARD = "taosr1_model.json"
IDENTITY_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                  "chat_template.jinja", "vocab.json", "merges.txt", "tokenizer.model")


def content_hash(path: str | Path) -> str:
    """SHA-256 over every weight file and the config and tokenizer files, each named and read whole."""
    p = check_model_dir(path)
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in WEIGHT_SUFFIXES or f.name in IDENTITY_FILES):
            h.update(f"{f.name}\0{f.stat().st_size}\0".encode())
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 22), b""):
                    h.update(block)
    return h.hexdigest()


def stamp_identity(path: str | Path) -> str:
    """Record the folder's content hash in its card (at save or import, or after a deliberate change)."""
    p = Path(path)
    card = json.loads((p / CARD).read_text()) if (p / CARD).exists() else {"name": p.name}
    card["content_sha256"] = content_hash(p)
    (p / CARD).write_text(json.dumps(card, indent=2, default=str))
    return card["content_sha256"]


def model_version(path: str | Path) -> str:
    """The model's id: the first 12 hex digits of its content hash. Where the card recorded a hash at save time,
    the files must still match it, else :class:`ModelIdentityError` (a corrupted copy never scores as the good
    model)."""
    p = check_model_dir(path)
    digest = content_hash(p)
    card = p / CARD
    if card.exists():
        recorded = json.loads(card.read_text()).get("content_sha256")
        if recorded and recorded != digest:
            raise ModelIdentityError(f"model {p}: its files do not match the identity recorded in {CARD} "
                                     f"({recorded[:12]} recorded, {digest[:12]} now): corrupted or changed; "
                                     f"restore it, or re-stamp it after a deliberate change")
    return digest[:12]


def model_name(path: str | Path) -> str:
    """A readable name: the card's name if the folder has one, else the folder name."""
    p = Path(path)
    card = p / "taosr1_model.json"
    if card.exists():
        return json.loads(card.read_text()).get("name", p.name)
    return p.name


def model_card(path: str | Path) -> dict:
    """The folder's model card (empty if it has none)."""
    card = Path(path) / CARD
    return json.loads(card.read_text()) if card.exists() else {}


def prompt_variant(path: str | Path) -> str:
    """The prompt variant the model was trained (or imported) for, from its card: ``long`` unless it says
    ``compact``. Scoring, pass@N and evaluation build each pair's prompt in this variant."""
    card = Path(path) / CARD
    if card.exists():
        return "compact" if json.loads(card.read_text()).get("prompt") == "compact" else "long"
    return "long"


def load_tokenizer(path: str | Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(check_model_dir(path)), trust_remote_code=False)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_causal_lm(path: str | Path, dtype: str = "float32", device: str = "cpu") -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(check_model_dir(path)), dtype=getattr(torch, dtype),
                                                 trust_remote_code=False, use_safetensors=True)
    return model.to(device).eval()
