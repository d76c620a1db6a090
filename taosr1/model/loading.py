"""Loading any local checkpoint the same way: safetensors only, never remote code, never a hub download."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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


def model_version(path: str | Path) -> str:
    """Stable short id of a model folder: its config and the names and sizes of its weight files."""
    p = check_model_dir(path)
    h = hashlib.sha256((p / "config.json").read_bytes())
    for f in sorted(p.iterdir()):
        if f.suffix in WEIGHT_SUFFIXES:
            h.update(f"{f.name}:{f.stat().st_size}".encode())
            with open(f, "rb") as fh:  # the safetensors header (names, shapes, offsets) plus the first MiB
                h.update(fh.read(1 << 20))
    return h.hexdigest()[:12]


def model_name(path: str | Path) -> str:
    """A readable name: the card's name if the folder has one, else the folder name."""
    p = Path(path)
    card = p / "taosr1_model.json"
    if card.exists():
        return json.loads(card.read_text()).get("name", p.name)
    return p.name


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
