"""The stage registry and the TaoSR1 stage graph, written once as plain data.

The CLI builds its commands from :data:`STAGES`, ``jobs/<job>.py`` runs one of them under spark-submit,
``taosr1 pipeline train`` walks :data:`TRAINING_LOOP` in-process and the Airflow DAG turns the same steps into
SparkSubmit tasks. This module imports nothing heavy (the Airflow venv imports it without Spark or torch): stage
classes are named as ``"module:Class"`` and loaded on use.

To add a stage: copy a stage module (e.g. ``taosr1/corpora/dpo.py``), register it here, add its ``jobs/`` file.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any


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


def loop_settings(*, n: Any, temperature: Any, max_new_tokens: Any, grpo_completion_tokens: Any, sft_steps: Any,
                  dpo_steps: Any, grpo_steps: Any, seed: Any, embeddings: Any = True, recipe: str = "builtin",
                  passn_pairs: Any = None, eval_pairs: Any = None, gpu: bool = False,
                  sft_completion: str = "cot", min_gain_macro_f1: Any = 0.005,
                  min_gain_ndcg_10: Any = 0.0, readout_pairs: Any = None,
                  readout_epochs: Any = None, sft_label_weight: Any = 1.0,
                  dpo_loss: str = "sigmoid+sft") -> dict[str, dict[str, Any]]:
    """Each step's own settings beside its wiring (values may be Airflow templates). Training steps with no rows
    keep their starting model so a scheduled loop runs to the evaluation. ``gpu``: pass@N with vLLM on CUDA,
    training on the GPU, GRPO generating with TRL's colocated vLLM. The evaluation scores the champion beside the
    loop's models; ``promote`` makes the GRPO model the champion only if it wins by the margins."""
    r = RECIPES[recipe]
    on = dict(engine="vllm", device="cuda") if gpu else {}
    passn = dict(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, chunks=4,
                 balanced_only=True, max_pairs=passn_pairs, **r["passn"], **on)
    train = dict(cpu=False) if gpu else {}
    sft = dict(max_steps=sft_steps, if_empty="keep_base", completion=sft_completion, label_weight=sft_label_weight,
               **r["sft"], **train)
    return {
        "corpus": dict(seed=seed),
        "readout": {**r["readout"], "seed": seed, **({"max_pairs": readout_pairs} if readout_pairs else {}),
                    **({"epochs": readout_epochs} if readout_epochs else {})},
        "sft": sft, "sft_think_first": {**sft, "completion": "cot", "label_weight": 1.0},
        "passn_sft": passn, "passn_dpo": passn,
        "dpo": dict(max_steps=dpo_steps, if_empty="keep_base", dpo_loss=dpo_loss, **r["dpo"], **train),
        "grpo": dict(max_steps=grpo_steps, num_generations=4, max_completion_length=grpo_completion_tokens,
                     if_empty="keep_base", **r["grpo"], **train, **(dict(use_vllm=True) if gpu else {})),
        "evaluate": dict(embeddings=embeddings, max_pairs=eval_pairs, champion=True, **r["evaluate"],
                         **(dict(device="cuda") if gpu else {})),
        "promote": dict(min_gain_macro_f1=min_gain_macro_f1, min_gain_ndcg_10=min_gain_ndcg_10),
    }


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
