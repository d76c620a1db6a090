"""TRL trainers built straight from the corpus tables (SFT → DPO → GRPO), CPU or GPU, full or LoRA.

The TRL hand-off: datasets come from ``taosr1.training.data`` in the trainers' own formats (conversational
prompt/completion, prompt/chosen/rejected, prompt + ``gold_label`` for the reward functions).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field

from taosr1.errors import InputError
from taosr1.job import Context, Ident, Params, Stage
from taosr1.model.loading import check_model_dir, load_tokenizer, stamp_identity
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
    grpo_num_generations: int = 4
    grpo_max_completion_length: int = 96
    grpo_beta: float = 0.02
    grpo_partial_credit: float = 0.0


def _common(cfg: TrainConfig, out_dir: str) -> dict[str, Any]:
    return dict(output_dir=out_dir, max_steps=cfg.max_steps, learning_rate=cfg.learning_rate,
                per_device_train_batch_size=cfg.batch_size, gradient_accumulation_steps=cfg.grad_accum,
                seed=cfg.seed, logging_steps=cfg.logging_steps, save_strategy="no", report_to=[],
                use_cpu=cfg.use_cpu, bf16=False, gradient_checkpointing=False, disable_tqdm=False)


def _model(model_dir: str):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(check_model_dir(model_dir)), trust_remote_code=False,
                                                use_safetensors=True)


def _peft(cfg: TrainConfig):
    if cfg.lora_r <= 0:
        return None
    from peft import LoraConfig

    return LoraConfig(r=cfg.lora_r, lora_alpha=2 * cfg.lora_r, target_modules="all-linear", task_type="CAUSAL_LM")


def sft_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import SFTConfig, SFTTrainer

    cfg = cfg or TrainConfig()
    args = SFTConfig(**_common(cfg, out_dir), max_length=cfg.max_length, completion_only_loss=True)
    return SFTTrainer(model=_model(model_dir), args=args, train_dataset=dataset,
                      processing_class=load_tokenizer(model_dir), peft_config=_peft(cfg))


def dpo_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import DPOConfig, DPOTrainer

    cfg = cfg or TrainConfig()
    args = DPOConfig(**_common(cfg, out_dir), beta=cfg.dpo_beta, max_length=cfg.max_length)
    return DPOTrainer(model=_model(model_dir), args=args, train_dataset=dataset,
                      processing_class=load_tokenizer(model_dir), peft_config=_peft(cfg))


def grpo_trainer(model_dir: str, dataset, out_dir: str, cfg: TrainConfig | None = None):
    from trl import GRPOConfig, GRPOTrainer

    from taosr1.training.rewards import format_reward, label_reward, label_reward_with_partial_credit

    cfg = cfg or TrainConfig()
    gens = cfg.grpo_num_generations
    args = GRPOConfig(**{**_common(cfg, out_dir), "per_device_train_batch_size": max(gens, cfg.batch_size // gens * gens)},
                      num_generations=gens, max_completion_length=cfg.grpo_max_completion_length,
                      beta=cfg.grpo_beta, loss_type="dapo", use_vllm=False)
    reward = label_reward_with_partial_credit(cfg.grpo_partial_credit) if cfg.grpo_partial_credit else label_reward
    return GRPOTrainer(model=_model(model_dir), args=args, train_dataset=dataset,
                       processing_class=load_tokenizer(model_dir), reward_funcs=[reward, format_reward],
                       peft_config=_peft(cfg))


def save_trained(trainer, out_dir: str, stage: str, data_description: str, cfg: TrainConfig) -> Path:
    """Save weights (safetensors; LoRA merged into the base) + tokenizer + a model card with data and metrics."""
    out = Path(out_dir)
    model = trainer.model
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.save_pretrained(out, safe_serialization=True)
    trainer.processing_class.save_pretrained(out)
    history = [h for h in trainer.state.log_history if "loss" in h or "train_loss" in h]
    card = {"name": f"taosr1-{stage}", "stage": stage, "data": data_description, "config": asdict(cfg),
            "metrics": history[-5:]}
    (out / "taosr1_model.json").write_text(json.dumps(card, indent=2, default=str))
    stamp_identity(out)
    return out


def keep_base(base: str, out: str, stage: str, data_description: str) -> Path:
    """The starting model saved unchanged as this stage's output, with a card that says why."""
    import shutil

    src, dst = check_model_dir(base), Path(out)
    shutil.copytree(src, dst, dirs_exist_ok=True, ignore=shutil.ignore_patterns("calibration"))
    card = {"name": f"taosr1-{stage}", "stage": stage, "data": data_description,
            "skipped": f"no training rows; weights are the starting model {src}"}
    (dst / "taosr1_model.json").write_text(json.dumps(card, indent=2))
    stamp_identity(dst)
    return dst


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
    cpu: bool = Field(default=True, description="Train on the CPU (--no-cpu: the GPU).")
    num_generations: int = Field(default=4, ge=2, description="GRPO: completions per prompt.")
    max_completion_length: int = Field(default=96, ge=1, description="GRPO: tokens per completion.")
    use_vllm: bool = Field(default=False, description="GRPO on GPUs: TRL's colocated vLLM generation.")
    if_empty: Literal["fail", "keep_base"] = Field(default="fail", description="No training rows: fail, or save "
                                                   "the starting model unchanged (its card says so), as a scheduled "
                                                   "loop wants.")

    def train_config(self) -> TrainConfig:
        return TrainConfig(max_steps=self.max_steps, learning_rate=self.learning_rate, batch_size=self.batch_size,
                           lora_r=self.lora_r, use_cpu=self.cpu, grpo_num_generations=self.num_generations,
                           grpo_max_completion_length=self.max_completion_length)


class _Train(Stage[TrainParams]):
    """TRL training of one stage from its corpus table; saves a safetensors folder with its model card."""

    Params = TrainParams
    kind: ClassVar[Kind]
    build: ClassVar[Callable[..., Any]]

    def run_id(self, params: TrainParams) -> str:
        return f"{self.name}-{Path(params.out).name}-{uuid.uuid4().hex[:6]}"

    def run(self, ctx: Context, p: TrainParams) -> None:
        from taosr1.training.data import load_dataset_for

        cfg = p.train_config()
        ds = load_dataset_for(self.kind, ctx.store, p.data)
        c = ctx.report.counts
        if len(ds) == 0:
            if p.if_empty == "fail":
                raise InputError(f"{self.kind}: the corpus partition {p.data} has no training rows")
            ctx.report.info.update(path=keep_base(p.base, p.out, self.kind, ds.info.description), skipped=True)
            return
        run_dir = str(Path(p.out).parent / f".{Path(p.out).name}-run")
        trainer = type(self).build(p.base, ds, run_dir, cfg)
        if p.use_vllm and self.kind == "grpo":  # GPU only: TRL's colocated vLLM generation (not on CPU)
            trainer.args.use_vllm = True
            trainer.args.vllm_mode = "colocate"
        trainer.train()
        path = save_trained(trainer, p.out, self.kind, ds.info.description, cfg)
        c.rows_in = c.kept = len(ds)
        c.extra = {"steps": int(trainer.state.global_step)}
        ctx.report.info.update(path=path, params={"data_version": ds.info.description})


class TrainSft(_Train):
    """SFT on the teacher-CoT corpus (TRL SFTTrainer, completion-only loss)."""

    name, kind, reads, writes = "train_sft", "sft", ("sft_corpus",), ()
    build = staticmethod(sft_trainer)


class TrainDpo(_Train):
    """DPO on right/wrong pass@N pairs (TRL DPOTrainer, reference = the starting policy)."""

    name, kind, reads, writes = "train_dpo", "dpo", ("dpo_pairs",), ()
    build = staticmethod(dpo_trainer)


class TrainGrpo(_Train):
    """GRPO with label and format rewards on the dynamic-sampling set (TRL GRPOTrainer)."""

    name, kind, reads, writes = "train_grpo", "grpo", ("grpo_prompts",), ()
    build = staticmethod(grpo_trainer)
