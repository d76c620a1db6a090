"""TRL trainers built straight from the corpus tables (SFT → DPO → GRPO), CPU or GPU, full or LoRA.

The TRL hand-off: datasets come from ``taosr1.training.data`` in the trainers' own formats (conversational
prompt/completion, prompt/chosen/rejected, prompt + ``gold_label`` for the reward functions).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from taosr1.model.loading import check_model_dir, load_tokenizer


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
    return out


def run_stage(stage: str, warehouse_root: str, partition: str, base_model: str, out_dir: str,
              cfg: TrainConfig | None = None, use_vllm: bool = False) -> Path:
    """Train one stage (sft | dpo | grpo) from its corpus table and save the model folder with its card."""
    from taosr1.training.data import load_dataset_for

    cfg = cfg or TrainConfig()
    ds = load_dataset_for(stage, warehouse_root, partition)
    if len(ds) == 0:
        raise ValueError(f"{stage}: the corpus partition {partition} has no training rows")
    build = {"sft": sft_trainer, "dpo": dpo_trainer, "grpo": grpo_trainer}[stage]
    run_dir = str(Path(out_dir).parent / f".{Path(out_dir).name}-run")
    trainer = build(base_model, ds, run_dir, cfg)
    if stage == "grpo" and use_vllm:  # GPU only: TRL's colocated vLLM generation (not available on CPU)
        trainer.args.use_vllm = True
        trainer.args.vllm_mode = "colocate"
    trainer.train()
    return save_trained(trainer, out_dir, stage, ds.info.description, cfg)
