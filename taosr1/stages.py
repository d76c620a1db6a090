"""The stage registry and the TaoSR1 stage graph, written once as plain data.

The CLI builds its commands from :data:`STAGES`, ``jobs/<job>.py`` runs one of them under spark-submit,
``taosr1 pipeline train`` walks :data:`TRAINING_LOOP` in-process and the Airflow DAG turns the same steps into
SparkSubmit tasks. This module imports nothing heavy (the Airflow venv imports it without Spark or torch): stage
classes are named as ``"module:Class"`` and loaded on use.

To add a stage: copy a stage module (e.g. ``taosr1/corpora/dpo.py``), register it here, add its ``jobs/`` file.
"""

from __future__ import annotations

import importlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True)
class StageSpec:
    """Where a stage lives and how it is called: ``job`` is its name in ``job_runs`` and ``jobs/<job>.py``."""

    job: str
    command: tuple[str, ...]
    target: str

    def load(self) -> Any:
        """The stage object (imports its module)."""
        module, cls = self.target.split(":")
        return getattr(importlib.import_module(module), cls)()


STAGES: dict[str, StageSpec] = {s.job: s for s in (
    StageSpec("load_labels", ("load-labels",), "taosr1.data.load:LoadLabels"),
    StageSpec("ingest_logs", ("ingest",), "taosr1.ingest.logs:IngestDay"),
    StageSpec("score_catalog", ("score",), "taosr1.scoring.score:ScoreCatalog"),
    StageSpec("calibrate_buckets", ("calibrate",), "taosr1.scoring.calibrate_stage:Calibrate"),
    StageSpec("sample_candidates", ("corpus", "candidates"), "taosr1.corpora.candidates:SampleCandidates"),
    StageSpec("annotate_candidates", ("corpus", "annotate"), "taosr1.corpora.annotate:Annotate"),
    StageSpec("build_sft_corpus", ("corpus", "sft"), "taosr1.corpora.sft:SftCorpus"),
    StageSpec("sample_pass_at_n", ("corpus", "pass-at-n"), "taosr1.corpora.pass_at_n:PassAtN"),
    StageSpec("build_dpo_pairs", ("corpus", "dpo"), "taosr1.corpora.dpo:DpoPairs"),
    StageSpec("label_difficulty", ("corpus", "difficulty"), "taosr1.corpora.difficulty:Difficulty"),
    StageSpec("train_readout", ("train", "readout"), "taosr1.training.readout_stage:TrainReadout"),
    StageSpec("train_sft", ("train", "sft"), "taosr1.training.trainers:TrainSft"),
    StageSpec("train_dpo", ("train", "dpo"), "taosr1.training.trainers:TrainDpo"),
    StageSpec("train_grpo", ("train", "grpo"), "taosr1.training.trainers:TrainGrpo"),
    StageSpec("evaluate", ("evaluate",), "taosr1.evaluation.evaluate:Evaluate"),
    StageSpec("promote_model", ("promote",), "taosr1.evaluation.promote:PromoteModel"),
    StageSpec("vacuum", ("vacuum",), "taosr1.maintenance:Vacuum"),
)}


@dataclass(frozen=True)
class Step:
    """One step of a loop: a stage and its wiring. Values are templates over the loop's variables
    (``{corpus}``, ``{run}``, ``{base}``, ``{models}``, ``{sft_model}`` …); ``produces`` names the model variable a
    training step sets."""

    id: str
    job: str
    wiring: dict[str, Any] = field(default_factory=dict)
    produces: str | None = None


# From the logs to what raters label next: candidates of a window → an annotation round (export for raters).
ANNOTATION_ROUND: tuple[Step, ...] = (
    Step("candidates", "sample_candidates", {"start": "{start}", "end": "{end}"}),
    Step("annotate", "annotate_candidates", {"window_id": "{start}_{end}", "queue_id": "{queue}"}),
)

# TaoSR1's order: SFT on the teacher's CoT, pass@N with the SFT policy → DPO, difficulty with the DPO policy → GRPO.
# ``sft_think_first`` is the paper's ablation (the same corpus, CoT before the label), evaluated beside the rest.
TRAINING_LOOP: tuple[Step, ...] = (
    Step("corpus", "build_sft_corpus", {"source": "{source}", "corpus_id": "{corpus}",
                                        "from_candidates": "{from_candidates}", "prompt": "{prompt}"}),
    Step("readout", "train_readout", {"data": "{corpus}", "base": "{base}", "out": "{models}/lpft-{corpus}",
                                      "readout_out": "{models}/readout-{corpus}"}, produces="readout_model"),
    Step("sft", "train_sft", {"data": "{corpus}", "base": "{readout_model}", "out": "{models}/sft-{corpus}"},
         produces="sft_model"),
    Step("sft_think_first", "train_sft", {"data": "{corpus}", "base": "{readout_model}",
                                          "out": "{models}/sft-tf-{corpus}",
                                          "order": "think_first"}, produces="sft_tf_model"),
    Step("passn_sft", "sample_pass_at_n", {"corpus_id": "{corpus}", "run_id": "{run}-sft", "model": "{sft_model}"}),
    Step("dpo_pairs", "build_dpo_pairs", {"run_id": "{run}-sft", "prompt": "{prompt}"}),
    Step("dpo", "train_dpo", {"data": "{run}-sft", "base": "{sft_model}", "out": "{models}/dpo-{corpus}"},
         produces="dpo_model"),
    Step("passn_dpo", "sample_pass_at_n", {"corpus_id": "{corpus}", "run_id": "{run}-dpo", "model": "{dpo_model}"}),
    Step("difficulty", "label_difficulty", {"run_id": "{run}-dpo", "prompt": "{prompt}"}),
    Step("grpo", "train_grpo", {"data": "{run}-dpo", "base": "{dpo_model}", "out": "{models}/grpo-{corpus}"},
         produces="grpo_model"),
    Step("evaluate", "evaluate", {"corpus_id": "{eval_corpus}", "source": "{eval_source}",
                                  "train_source": "{eval_train_source}", "models": {
                                      "base": "{base}", "readout": "{models}/readout-{corpus}",
                                      "lpft": "{readout_model}", "sft_think_first": "{sft_tf_model}",
                                      "sft": "{sft_model}",
                                      "dpo": "{dpo_model}", "grpo": "{grpo_model}"}}),
    Step("promote", "promote_model", {"challenger": "{grpo_model}"}),
)

# Settings per model size. ``builtin``: the 0.7M-parameter built-in model (tests, the demo). ``small``: an imported
# ~100M-parameter model on CPU cores: the top layers fully fine-tuned in bf16 autocast where the CPU has bf16
# instructions (each step's cost is mostly the backward pass, which then stops at the trained layers).
RECIPES: dict[str, dict[str, dict[str, Any]]] = {
    "builtin": {
        "readout": dict(train_layers=1, epochs=2, learning_rate=1e-3, curve_pairs=100, curve_every=256),
        "sft": dict(learning_rate=3e-3, batch_size=8),
        "dpo": dict(learning_rate=5e-4, batch_size=8),
        "grpo": dict(learning_rate=2e-4, batch_size=8),
        "passn": dict(batch_size=16),
        "evaluate": {},
    },
    "small": {
        # the read-out on frozen features, then the top 4 layers on cached activations (an epoch of 6,000 Home
        # Depot pairs is ~10 min on 2 cores; the cache pass is the rest)
        # SmolLM2-135M reads the label best after layer 15 of 30 (bench/layer_probe.py: world 0.596 vs 0.415 at
        # the top, Home Depot 0.295 vs 0.193), so the read-out cuts the model there
        "readout": dict(keep_layers=15, train_layers=4, epochs=2, learning_rate=1e-4, curve_pairs=400,
                        curve_every=1024, max_pairs=6000),
        "sft": dict(learning_rate=1e-4, batch_size=8, train_layers=10, dtype="auto"),
        "dpo": dict(learning_rate=2e-5, batch_size=8, train_layers=10, dtype="auto"),
        "grpo": dict(learning_rate=5e-6, batch_size=8, train_layers=10, dtype="auto"),
        "passn": dict(batch_size=256, dtype="auto"),
        "evaluate": dict(dtype="auto", batch_size=64, calibrate_pairs=300),
    },
}


class LoopSettings(BaseModel):
    """The loop's settings, written once: ``taosr1 pipeline train`` takes them as options, the training DAG as
    params (both generated from these fields), and :func:`loop_settings` turns them into each step's settings."""

    model_config = ConfigDict(extra="forbid")

    recipe: Literal["auto", "builtin", "small"] = Field(default="auto", description="Training settings: builtin (the "
                                                        "0.7M built-in model) | small (an imported ~100M model on "
                                                        "CPU) | auto (read from the base model's card).")
    passn_pairs: int | None = Field(default=None, ge=1, description="pass@N samples at most this many train pairs.")
    eval_pairs: int | None = Field(default=None, ge=1, description="Evaluate a stated subsample of about this "
                                      "many pairs (whole queries).")
    sft_completion: Literal["cot", "label"] = Field(default="cot", description="Post-CoT SFT on the label and its "
                                                    "CoT (the paper) | the label line only (an ablation).")
    gpu: bool = Field(default=False, description="pass@N with vLLM on CUDA, training on the GPU, GRPO generating "
                      "with TRL's colocated vLLM.")
    n: int = Field(default=5, ge=2, description="pass@N samples per pair.")
    temperature: float = Field(default=1.0, gt=0, description="pass@N sampling temperature.")
    max_new_tokens: int = Field(default=160, ge=1, description="pass@N: tokens per sample.")
    grpo_completion_tokens: int = Field(default=80, ge=1, description="GRPO: tokens per rollout.")
    readout_pairs: int | None = Field(default=None, ge=2, description="Read-out + fine-tune on about this many "
                                         "train pairs (whole queries; default: the recipe's).")
    readout_epochs: float | None = Field(default=None, gt=0, description="Fine-tune epochs after the read-out "
                                            "(default: the recipe's).")
    sft_label_weight: float = Field(default=1.0, ge=0, description="Post-CoT SFT: the label token's loss weight "
                                    "against each CoT token (1 = TRL's plain completion loss).")
    dpo_loss: Literal["sigmoid", "robust", "ipo", "sigmoid+sft", "robust+sft"] = Field(
        default="sigmoid+sft", description="DPO's TRL loss (pass@N pairs are noisy: an SFT term on the chosen side "
        "by default).")
    sft_steps: int = Field(default=300, ge=1, description="SFT optimiser steps.")
    dpo_steps: int = Field(default=60, ge=1, description="DPO optimiser steps.")
    grpo_steps: int = Field(default=20, ge=1, description="GRPO optimiser steps.")
    embeddings: bool = Field(default=True, description="Include the MiniLM embedding baseline.")
    min_gain_macro_f1: float = Field(default=0.005, ge=-1, le=1, description="Promotion: the GRPO model becomes "
                                     "the champion only if its macro-F1 beats the champion's by this much ...")
    min_gain_ndcg_10: float = Field(default=0.0, ge=-1, le=1, description="... and its NDCG@10 by this much.")
    seed: int = Field(default=13, description="Seed of every step.")


BUILTIN_MAX_PARAMETERS = 5_000_000  # the built-in model has 0.7M; imported small models start near 100M
def base_card(base: str) -> dict[str, Any]:
    """The base model's card (empty where it has none)."""
    from taosr1.model.loading import CARD  # plain Python: the Airflow venv imports it too

    card = Path(base) / CARD
    return json.loads(card.read_text()) if card.is_file() else {}


def resolve_recipe(recipe: str, base: str) -> str:
    """``auto``: ``builtin`` for the built-in model (or a model trained from it), else ``small``, from the card."""
    if recipe != "auto":
        return recipe
    params = base_card(base).get("parameters")
    config = Path(base) / "config.json"
    if params is None and config.is_file():  # a trained model's card may not count them: estimate from its shape
        c = json.loads(config.read_text())
        h, layers = int(c.get("hidden_size", 0)), int(c.get("num_hidden_layers", 0))
        params = int(c.get("vocab_size", 0)) * h + 12 * layers * h * h
    return "builtin" if params is None or int(params) <= BUILTIN_MAX_PARAMETERS else "small"


def loop_settings(s: LoopSettings, recipe: str) -> dict[str, dict[str, Any]]:
    """Each step's own settings beside its wiring, from one :class:`LoopSettings` and a resolved recipe. Training
    steps with no rows keep their starting model so a scheduled loop runs to the evaluation. ``gpu``: pass@N with
    vLLM on CUDA, training on the GPU, GRPO generating with TRL's colocated vLLM. The evaluation scores the champion
    beside the loop's models; ``promote`` makes the GRPO model the champion only if it wins by the margins."""
    r = RECIPES[recipe]
    on = dict(engine="vllm", device="cuda") if s.gpu else {}
    passn = dict(n=s.n, temperature=s.temperature, max_new_tokens=s.max_new_tokens, seed=s.seed, chunks=4,
                 balanced_only=True, max_pairs=s.passn_pairs, **r["passn"], **on)
    train = dict(cpu=False) if s.gpu else {}
    sft = dict(max_steps=s.sft_steps, if_empty="keep_base", completion=s.sft_completion,
               label_weight=s.sft_label_weight, **r["sft"], **train)
    return {
        "corpus": dict(seed=s.seed),
        "readout": {**r["readout"], "seed": s.seed, **({"max_pairs": s.readout_pairs} if s.readout_pairs else {}),
                    **({"epochs": s.readout_epochs} if s.readout_epochs else {})},
        "sft": sft, "sft_think_first": {**sft, "completion": "cot", "label_weight": 1.0},
        "passn_sft": passn, "passn_dpo": passn,
        "dpo": dict(max_steps=s.dpo_steps, if_empty="keep_base", dpo_loss=s.dpo_loss, **r["dpo"], **train),
        "grpo": dict(max_steps=s.grpo_steps, num_generations=4, max_completion_length=s.grpo_completion_tokens,
                     if_empty="keep_base", **r["grpo"], **train, **(dict(use_vllm=True) if s.gpu else {})),
        "evaluate": dict(embeddings=s.embeddings, max_pairs=s.eval_pairs, champion=True, **r["evaluate"],
                         **(dict(device="cuda") if s.gpu else {})),
        "promote": dict(min_gain_macro_f1=s.min_gain_macro_f1, min_gain_ndcg_10=s.min_gain_ndcg_10),
    }


def loop_variables(*, source: str, tag: str, base: str, models: str, from_candidates: str = "",
                   eval_source: str = "") -> dict[str, str]:
    """The loop's variables before any step ran (ids from ``tag``: a run's day in the DAG, a random tag in the
    pipeline); each training step's output is named from its wiring, so a later step can name it up front."""
    from taosr1.model.loading import prompt_variant

    corpus = f"corpus-{source}-{tag}"
    variables = {"source": source, "corpus": corpus, "run": f"passn-{source}-{tag}", "base": base,
                 "models": models, "from_candidates": from_candidates, "prompt": prompt_variant(base),
                 "eval_corpus": "" if eval_source else corpus, "eval_source": eval_source,
                 "eval_train_source": source if eval_source else ""}
    for step in TRAINING_LOOP:
        if step.produces:
            variables[step.produces] = fill(step.wiring["out"], variables)
    return variables


def step_params(step: Step, variables: dict[str, str], settings: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One step's params: its wiring filled in, then its settings (a skipped model in ``models`` is dropped)."""
    wiring = fill(step.wiring, variables)
    if "models" in wiring:
        wiring["models"] = {k: v for k, v in wiring["models"].items() if v}
    return {**wiring, **settings.get(step.id, {})}


def fill(value: Any, variables: dict[str, str]) -> Any:
    """A step's wiring with the loop's variables filled in (dicts and strings, recursively)."""
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    return value.format(**variables) if isinstance(value, str) else value


def cli_args(params: dict[str, Any]) -> list[str]:
    """Params as the flags of ``jobs/<job>.py`` (``--corpus-id X``, ``--models k=v`` repeated, ``--flag/--no-flag``)."""
    args: list[str] = []
    for name, value in params.items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{name.replace('_', '-')}")
        elif isinstance(value, dict):
            for k, v in value.items():
                args += [flag, f"{k}={v}"]
        elif value is not None:
            args += [flag, str(value)]
    return args
