"""TRL trainers built straight from the corpus tables (SFT → DPO → GRPO), CPU or GPU, full or LoRA.

The TRL hand-off: datasets come from ``taosr1.training.data`` in the trainers' own formats (conversational
prompt/completion, prompt/chosen/rejected, prompt + ``gold_label`` for the reward functions).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from taosr1.errors import InputError
from taosr1.ids import new_id
from taosr1.job import Context, Ident, Params, Stage
from taosr1.model.loading import check_model_dir, load_tokenizer, model_card, prompt_variant, stamp_identity
from taosr1.training.data import Kind


@dataclass
class TrainConfig:
    """What every stage shares; defaults run on 2 CPU cores."""

    max_steps: int = 50
    learning_rate: float = 5e-4
    batch_size: int = 8
    grad_accum: int = 1
    seed: int = 0
    lora_r: int = 0  # > 0: LoRA adapters (peft) on all linear layers instead of full fine-tuning
    use_cpu: bool = True
    logging_steps: int = 10
    max_length: int = 1024
    dpo_beta: float = 0.1
    dpo_loss: str = "sigmoid"  # sigmoid | robust | ipo | sigmoid+sft | robust+sft (TRL loss_type, combined)
    grpo_num_generations: int = 4
    grpo_max_completion_length: int = 96
    grpo_beta: float = 0.02
    grpo_partial_credit: float = 0.0
    bf16: bool = False  # bf16 autocast (only where the CPU has bf16 instructions, or on CUDA)
    checkpoint_steps: int = 0  # > 0: a checkpoint every N steps (the latest kept), so a killed run resumes
    train_layers: int = 0  # > 0: full fine-tuning of the top N decoder layers (+ final norm) only
    report_to: tuple[str, ...] = ()  # ("mlflow",) inside a tracked run: TRL logs loss and its arguments there
    label_weight: float = 1.0  # SFT: the loss weight of the label token against each CoT token (post-CoT order)
    use_vllm: bool = False  # GRPO on GPUs: TRL's colocated vLLM generation (read when the trainer is built)


def _common(cfg: TrainConfig, out_dir: str) -> dict[str, Any]:
    return dict(output_dir=out_dir, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
                seed=cfg.seed, logging_steps=cfg.logging_steps, report_to=list(cfg.report_to),
                save_strategy="steps" if cfg.checkpoint_steps else "no", save_steps=cfg.checkpoint_steps or 500,
                save_total_limit=1,
                use_cpu=cfg.use_cpu, bf16=cfg.bf16, gradient_checkpointing=False, disable_tqdm=False)


def _model(model_dir: str, cfg: TrainConfig | None = None):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(check_model_dir(model_dir)), trust_remote_code=False,
                                                 use_safetensors=True)
    if cfg is not None and cfg.train_layers > 0 and cfg.lora_r <= 0:
        freeze_below_top(model, cfg.train_layers)
    return model


def freeze_below_top(model, n: int) -> int:
    """Train only the top ``n`` decoder layers and the final norm (the head stays tied to the frozen embeddings):
    backward then stops at layer ``L - n``, which is most of the saving on a CPU. Returns the trainable count."""
    layers = model.get_decoder().layers
    keep = {id(p) for layer in layers[max(0, len(layers) - n):] for p in layer.parameters()}
    keep |= {id(p) for p in model.get_decoder().norm.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) in keep)
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _peft(cfg: TrainConfig):
    if cfg.lora_r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear", task_type="CAUSAL_LM")


def label_weighted_loss(logits, labels, label_weight: float):
    """Next-token cross-entropy over the completion (labels -100 elsewhere), the first completion token (the label
    in the post-CoT order) weighted ``label_weight`` against 1 for each CoT token; mean over the weights."""
    import torch

    tgt = labels[:, 1:]
    ce = torch.nn.functional.cross_entropy(logits[:, :-1].float().transpose(1, 2), tgt, ignore_index=-100,
                                           reduction="none")
    valid = tgt != -100
    first = valid & (valid.cumsum(dim=1) == 1)
    w = valid.float() + (label_weight - 1.0) * first.float()
    return (ce * w).sum() / w.sum().clamp(min=1e-9)


def _sft_class():
    from trl import SFTTrainer

    class LabelWeightedSFTTrainer(SFTTrainer):
        """TRL's SFTTrainer; with ``label_weight`` != 1 the loss weights the label token (TRL's own loss
        otherwise)."""

        label_weight: float = 1.0

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if self.label_weight == 1.0:
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            out = model(**{k: v for k, v in inputs.items() if k != "labels"}, use_cache=False)
            loss = label_weighted_loss(out.logits, inputs["labels"], self.label_weight)
            return (loss, out) if return_outputs else loss

    return LabelWeightedSFTTrainer


def sft_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import SFTConfig

    cfg = cfg or TrainConfig()
    args = SFTConfig(**_common(cfg, out_dir), max_length=cfg.max_length, completion_only_loss=True)
    trainer = _sft_class()(model=_model(model_dir, cfg), args=args, train_dataset=dataset,
                           processing_class=load_tokenizer(model_dir), peft_config=_peft(cfg))
    trainer.label_weight = cfg.label_weight
    return trainer


def dpo_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import DPOConfig, DPOTrainer

    cfg = cfg or TrainConfig()
    args = DPOConfig(**_common(cfg, out_dir), beta=cfg.dpo_beta, max_length=cfg.max_length, **dpo_loss_args(cfg.dpo_loss))
    return DPOTrainer(model=_model(model_dir, cfg), args=args, train_dataset=dataset,
                      processing_class=load_tokenizer(model_dir), peft_config=_peft(cfg))


DPO_LOSSES = ("sigmoid", "robust", "ipo", "sigmoid+sft", "robust+sft")


def dpo_loss_args(name: str) -> dict[str, Any]:
    """TRL's DPO loss for pass@N pairs, whose preference can be wrong (a lucky right sample, a teacher trace):
    ``robust`` assumes 10% flipped pairs (label smoothing), ``+sft`` adds an SFT term on the chosen side (what
    RPO's ``rpo_alpha`` was), ``ipo`` does not push margins to infinity."""
    if name not in DPO_LOSSES:
        raise ValueError(f"dpo loss {name!r}: one of {', '.join(DPO_LOSSES)}")
    parts = name.split("+")
    out: dict[str, Any] = {"loss_type": parts}
    if len(parts) > 1:
        out["loss_weights"] = [1.0] * len(parts)
    if "robust" in parts:
        out["label_smoothing"] = 0.1
    return out


def grpo_args(cfg: TrainConfig, out_dir: str):
    """TRL's GRPOConfig for these settings: ``use_vllm``/``vllm_mode`` are set here, before the trainer exists,
    because GRPOTrainer reads them in ``__init__`` (where it builds its vLLM engine)."""
    from trl import GRPOConfig

    gens = cfg.grpo_num_generations
    return GRPOConfig(**{**_common(cfg, out_dir), "per_device_train_batch_size": max(gens, cfg.batch_size // gens * gens)},
                      num_generations=gens, max_completion_length=cfg.grpo_max_completion_length,
                      beta=cfg.grpo_beta, loss_type="dapo", use_vllm=cfg.use_vllm,
                      **({"vllm_mode": "colocate"} if cfg.use_vllm else {}))


def grpo_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import GRPOTrainer

    from taosr1.training.rewards import format_reward, label_reward, label_reward_with_partial_credit

    cfg = cfg or TrainConfig()
    reward = label_reward_with_partial_credit(cfg.grpo_partial_credit) if cfg.grpo_partial_credit else label_reward
    return GRPOTrainer(model=_model(model_dir, cfg), args=grpo_args(cfg, out_dir), train_dataset=dataset,
                       processing_class=load_tokenizer(model_dir), reward_funcs=[reward, format_reward],
                       peft_config=_peft(cfg))


def save_trained(trainer, out_dir: str, stage: str, data_description: str, cfg: TrainConfig,
                 prompt: str = "long", lineage: dict | None = None, order: str = "post_cot",
                 adapter_out: str | None = None) -> Path:
    """Save weights (safetensors; LoRA merged into the base) + tokenizer + a model card with data, metrics, the
    prompt variant it was trained on and its lineage (base, training source)."""
    lineage = lineage or {}
    out = Path(out_dir)
    model = trainer.model
    if adapter_out and hasattr(model, "merge_and_unload"):  # the LoRA adapter alone (a few MB), before merging
        model.save_pretrained(adapter_out, safe_serialization=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    trainer.processing_class.save_pretrained(out)
    history = [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h]
    card = {"name": f"taosr1-{stage}", "stage": stage, "data": data_description, "config": asdict(cfg),
            "metrics": history[-5:], "prompt": prompt, "order": order, **lineage}
    if "completion=label" in data_description:
        card["completion"] = "label"
    (out / "taosr1_model.json").write_text(json.dumps(card, indent=2, default=str))
    stamp_identity(out)
    return out


def keep_base(base: str, out: str, stage: str, data_description: str) -> Path:
    """The starting model saved unchanged as this stage's output, with a card that says why."""
    src, dst = check_model_dir(base), Path(out)
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("calibration"))
    card = {"name": f"taosr1-{stage}", "stage": stage, "data": data_description,
            "skipped": f"no training rows; weights are the starting model {src}", "prompt": prompt_variant(src),
            "training_source": model_card(src).get("training_source")}
    (dst / "taosr1_model.json").write_text(json.dumps(card, indent=2))
    stamp_identity(dst)
    return dst


def resume_point(run_dir: str, settings: dict) -> str | None:
    """The latest checkpoint of an earlier attempt with exactly these settings (params and data version), else
    None; an attempt with other settings is cleared first, so checkpoints never mix two runs."""
    folder, stamp = Path(run_dir), Path(run_dir) / "taosr1_run.json"
    key = json.dumps(settings, sort_keys=True, default=str)
    if folder.exists() and (not stamp.exists() or stamp.read_text() != key):
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    stamp.write_text(key)
    ckpts = sorted(folder.glob("checkpoint-*"), key=lambda c: int(c.name.split("-")[1]))
    complete = [c for c in ckpts if (c / "trainer_state.json").exists()]  # written last: a kill mid-save has none
    for c in ckpts:
        if c not in complete:
            shutil.rmtree(c)
    return str(complete[-1]) if complete else None


class TrainParams(Params):
    """A training stage's inputs: the corpus (or pass@N run) partition, the starting model, the output folder."""

    data: Ident = Field(description="Corpus id (sft) or pass@N run id (dpo, grpo) of the training rows.")
    base: str = Field(description="Model folder to start from (SFT: the base; DPO: the SFT model; GRPO: the DPO "
                      "model).")
    out: str = Field(description="Output model folder.")
    max_steps: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    batch_size: int = Field(default=8, ge=1)
    lora_r: int = Field(default=0, ge=0, description="LoRA rank (0 = full fine-tuning).")
    train_layers: int = Field(default=0, ge=0, description="Full fine-tuning of the top N decoder layers only "
                              "(0 = all); ignored with LoRA.")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(default="auto", description="auto: bf16 autocast where "
                                                          "the CPU has bf16 instructions (or on CUDA), else fp32.")
    order: Literal["post_cot", "think_first"] = Field(default="post_cot", description="SFT: label first, then the "
                                                      "CoT (deployed) | the CoT first (the paper's ablation).")
    completion: Literal["cot", "label"] = Field(default="cot", description="SFT: train on the label and its CoT, or "
                                                "on the label line only (an ablation: no reasoning, fewer tokens).")
    adapter_out: str | None = Field(default=None, description="With LoRA: also save the adapter alone here (a few "
                                    "MB, shipped and merged into the same base by `taosr1.model.adapters`).")
    checkpoint_steps: int = Field(default=0, ge=0, description="Save a checkpoint every N steps (the latest is "
                                  "kept): a killed run with the same settings resumes from it (0 = no checkpoints).")
    cpu: bool = Field(default=True, description="Train on the CPU (--no-cpu: the GPU).")
    num_generations: int = Field(default=4, ge=2, description="GRPO: completions per prompt.")
    max_completion_length: int = Field(default=96, ge=1, description="GRPO: tokens per completion.")
    use_vllm: bool = Field(default=False, description="GRPO on GPUs: TRL's colocated vLLM generation (set in "
                           "GRPOConfig before the trainer is built, where TRL reads it).")
    dpo_loss: Literal["sigmoid", "robust", "ipo", "sigmoid+sft", "robust+sft"] = Field(
        default="sigmoid", description="DPO: TRL's loss; robust assumes 10% flipped pairs, +sft adds an SFT term on "
        "the chosen side, ipo bounds the margin.")
    label_weight: float = Field(default=1.0, ge=0, description="SFT, post-CoT order: the loss weight of the label "
                                "token against each CoT token (1 = TRL's plain completion loss).")
    if_empty: Literal["fail", "keep_base"] = Field(default="fail", description="No training rows: fail, or save "
                                                   "the starting model unchanged (its card says so), as a scheduled "
                                                   "loop wants.")

    def train_config(self) -> TrainConfig:
        from taosr1.model.precision import resolve_dtype

        bf16 = resolve_dtype(self.dtype, "cpu" if self.cpu else "cuda") == "bfloat16"
        return TrainConfig(max_steps=self.max_steps, learning_rate=self.learning_rate, batch_size=self.batch_size,
                           lora_r=self.lora_r, use_cpu=self.cpu, grpo_num_generations=self.num_generations,
                           grpo_max_completion_length=self.max_completion_length, bf16=bf16,
                           train_layers=self.train_layers, checkpoint_steps=self.checkpoint_steps,
                           label_weight=self.label_weight if self.order == "post_cot" else 1.0,
                           use_vllm=self.use_vllm, dpo_loss=self.dpo_loss)


class _Train(Stage[TrainParams]):
    """TRL training of one stage from its corpus table; saves a safetensors folder with its model card."""

    Params = TrainParams
    tracked = True
    kind: ClassVar[Kind]
    build: ClassVar[Callable[..., Any]]

    def run_id(self, params: TrainParams) -> str:
        return new_id(self.name, Path(params.out).name)

    def run(self, ctx: Context, p: TrainParams) -> None:
        from taosr1.training.data import load_dataset_for

        cfg = p.train_config()
        if ctx.tracker is not None:
            cfg = replace(cfg, report_to=("mlflow",))
        ds = load_dataset_for(self.kind, ctx.store, p.data, order=p.order, completion=p.completion)
        c = ctx.report.counts
        if len(ds) == 0:
            if p.if_empty == "fail":
                raise InputError(f"{self.kind}: the corpus partition {p.data} has no training rows")
            ctx.report.info.update(path=keep_base(p.base, p.out, self.kind, ds.info.description), skipped=True)
            return
        run_dir = str(Path(p.out).parent / f".{Path(p.out).name}-run")
        resume = resume_point(run_dir, {**p.model_dump(mode="json"), "data_version": ds.info.description})
        trainer = type(self).build(p.base, ds, run_dir, cfg)
        trainer.train(resume_from_checkpoint=resume)
        if resume:
            ctx.report.info["resumed_from"] = resume
        from taosr1.prompts.template import variant_of

        base_card = model_card(p.base)
        lineage = {"base": str(p.base), "base_name": base_card.get("name"),
                   "training_source": base_card.get("training_source") or _corpus_source(ctx, self.kind, p.data)}
        path = save_trained(trainer, p.out, self.kind, ds.info.description, cfg, variant_of(list(ds[0]["prompt"])),
                            lineage, p.order, p.adapter_out)
        shutil.rmtree(run_dir, ignore_errors=True)  # the model is saved: its checkpoints are debris now
        c.rows_in = c.kept = len(ds)
        c.extra = {"steps": int(trainer.state.global_step)}
        if ctx.tracker is not None:
            ctx.tracker.model_folder(path)
        ctx.report.info.update(path=path, params={"data_version": ds.info.description})


class TrainSft(_Train):
    """SFT on the teacher-CoT corpus (TRL SFTTrainer, completion-only loss)."""

    name, kind, reads, writes = "train_sft", "sft", ("sft_corpus",), ()
    build = staticmethod(sft_trainer)


class TrainDpo(_Train):
    """DPO on right/wrong pass@N pairs (TRL DPOTrainer, reference = the starting policy)."""

    name, kind, reads, writes = "train_dpo", "dpo", ("dpo_pairs", "pass_at_n_samples"), ()
    build = staticmethod(dpo_trainer)


class TrainGrpo(_Train):
    """GRPO with label and format rewards on the dynamic-sampling set (TRL GRPOTrainer)."""

    name, kind, reads, writes = "train_grpo", "grpo", ("grpo_prompts", "pass_at_n_samples"), ()
    build = staticmethod(grpo_trainer)


def _corpus_source(ctx: Context, kind: str, data: str) -> str | None:
    """The source of the judged pairs behind a training partition (what cross-source evaluation fits its
    baselines on by default)."""
    from pyspark.sql import functions as F

    if not ctx.store.exists("job_runs"):
        return None
    corpus = data
    if kind != "sft":
        from taosr1.corpora.pass_at_n import run_samples

        try:
            corpus = run_samples(ctx.store, data)[1]
        except Exception:  # noqa: BLE001 - lineage is best effort; the card then names no source
            return None
    if not corpus:
        return None
    row = ctx.store.read("job_runs").where((F.col("job") == "build_sft_corpus") & (F.col("run_id") == corpus)) \
        .select("params").limit(1).collect()
    return json.loads(row[0]["params"]).get("source") if row and row[0]["params"] else None
