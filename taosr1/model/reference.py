"""A model reference resolved once per job: where the folder is, its content version, its name, its thresholds.

Calibrated CumPT thresholds live beside the model (``calibration/v<n>.json`` + ``latest.json``); this module is
the only one that reads or writes them, so :mod:`taosr1.scoring.cumpt` stays pure arithmetic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from taosr1.scoring.cumpt import Thresholds

RULES_VERSION = "rules-v1"


@dataclass(frozen=True)
class ModelRef:
    """Everything a job needs to name a model in its outputs."""

    path: str
    name: str
    version: str
    thresholds: Thresholds
    threshold_origin: str

    @classmethod
    def resolve(cls, path: str, *, beta_cum: float | None = None, backend: str | None = None) -> "ModelRef":
        """Open the folder once: version, name and thresholds (``beta_cum`` overrides the calibration)."""
        if backend == "rules":
            th, origin = (Thresholds.cum(beta_cum), f"beta_cum={beta_cum}") if beta_cum is not None else \
                (Thresholds.cum(0.5), "default beta_cum=0.5")
            return cls(path, "taosr1-rules", RULES_VERSION, th, origin)
        from taosr1.model.loading import model_name, model_version

        version = model_version(path)
        th, origin = (Thresholds.cum(beta_cum), f"beta_cum={beta_cum}") if beta_cum is not None else \
            load_thresholds(path)
        return cls(str(path), model_name(path), version, th, origin)

    def threshold_params(self) -> dict:
        return {**self.thresholds.as_dict(), "origin": self.threshold_origin}


def save_thresholds(model_dir: str | Path, th: Thresholds, meta: dict) -> Path:
    """Store calibrated thresholds next to the model, versioned (``calibration/v<n>.json`` + ``latest.json``)."""
    folder = Path(model_dir) / "calibration"
    folder.mkdir(parents=True, exist_ok=True)
    n = len(list(folder.glob("v*.json"))) + 1
    doc = {"version": n, "thresholds": th.as_dict(), **meta}
    path = folder / f"v{n:04d}.json"
    path.write_text(json.dumps(doc, indent=2))
    (folder / "latest.json").write_text(json.dumps(doc, indent=2))
    return path


def load_thresholds(model_dir: str | Path, default_beta: float = 0.5) -> tuple[Thresholds, str]:
    """The latest calibrated thresholds of a model, or CumPT with ``default_beta``; returns (thresholds, origin)."""
    latest = Path(model_dir) / "calibration" / "latest.json"
    if latest.exists():
        doc = json.loads(latest.read_text())
        return Thresholds(**doc["thresholds"]), f"calibration v{doc['version']}"
    return Thresholds.cum(default_beta), f"default beta_cum={default_beta}"
