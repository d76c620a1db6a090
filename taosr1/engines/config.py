"""One validated config per engine backend, as a discriminated union on ``backend``.

Policy lives here, not in the CLI: e.g. vLLM's memory share defaults to 0.9 of a GPU but 0.15 on CPU builds (where
it sizes the KV cache out of RAM).
"""

from __future__ import annotations

import hashlib
import json
import typing
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator


class _EngineBase(BaseModel):
    """Fields every backend shares; hashable so a Spark worker keeps one engine per config."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    model_path: str = Field(description="Local model folder (config.json + safetensors).")
    batch_size: int = Field(default=16, ge=1, le=4096, description="Rows per engine call.")
    max_model_len: int = Field(default=1024, ge=8, description="Longest prompt in tokens; a longer one is a row "
                               "error, never truncated.")
    seed: int = 0
    torch_threads: int | None = Field(default=None, ge=1, description="CPU threads per engine; the Spark glue "
                                      "sets it from spark.task.cpus so concurrent tasks do not oversubscribe cores.")

    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(), sort_keys=True).encode()).hexdigest()[:16]


class HFConfig(_EngineBase):
    """transformers on CPU or CUDA."""

    backend: Literal["hf"] = "hf"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="float32", description="auto: bfloat16 on CUDA or a CPU with bf16 instructions, else float32")
    device: str = Field(default="cpu", description="cpu | cuda[:N]")
    prefix_cache: bool = Field(default=True, description="Compute the shared instruction's KV cache once.")
    share_query_prefix: bool = Field(default=True, description="Also run a query's tokens once for all its pairs "
                                     "(rows arrive grouped by query).")


class VLLMConfig(_EngineBase):
    """In-process ``vllm.LLM`` (GPU executors in production, the CPU build elsewhere)."""

    backend: Literal["vllm"] = "vllm"
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="float32", description="auto: bfloat16 on CUDA or a CPU with bf16 instructions, else float32")
    device: str = Field(default="cpu", description="cpu | cuda[:N]")
    prefix_cache: bool = Field(default=True, description="Compute the shared instruction's KV cache once.")
    gpu_memory_utilization: float | None = Field(default=None, gt=0, le=1, description="default: 0.9 on CUDA, "
                                                 "0.15 on CPU builds")
    cpu_kv_cache_gib: float = Field(default=1.0, gt=0, description="CPU builds: a fixed KV cache. vLLM's CPU "
                                    "worker otherwise sizes it as utilisation x RAM minus this process's resident "
                                    "memory, which fails in a process that already holds models or Spark")
    label_readout: Literal["logprobs", "classify"] = Field(
        default="logprobs", description="logprobs: one generated token, the label tokens' logprobs renormalised "
        "(the engine also samples) | classify: a pooling classifier built from the four label rows of the LM head "
        "(LLM.classify: one prefill, no sampler, exactly their softmax; scoring only)")
    enforce_eager: bool = Field(default=False, description="No CUDA graphs or compilation (always on for the CPU "
                                "build).")

    @model_validator(mode="after")
    def _memory_default(self) -> "VLLMConfig":
        if self.gpu_memory_utilization is None:
            object.__setattr__(self, "gpu_memory_utilization", 0.9 if self.device.startswith("cuda") else 0.15)
        return self


class OpenAIConfig(_EngineBase):
    """Any OpenAI-compatible completions server (e.g. a vLLM fleet); ``model_path`` gives the tokenizer."""

    backend: Literal["openai"] = "openai"
    base_url: str = Field(min_length=1, description="server URL ending in /v1")
    served_model: str | None = Field(default=None, description="The server's name of the model (default: the "
                                      "first model the server lists).")
    api_key_env: str = Field(default="OPENAI_API_KEY", description="The environment variable holding the API key.")
    concurrency: int = Field(default=8, ge=1, description="Requests in flight per engine.")
    timeout_s: float = Field(default=60.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(default=4, ge=0, description="Retries of a failed request (the client's back-off).")


class RulesConfig(_EngineBase):
    """The rule-based knowledge teacher as an engine: no model folder, milliseconds per pair."""

    backend: Literal["rules"] = "rules"
    model_path: str = "rules"
    confidence: float = Field(default=0.85, gt=0.25, lt=1.0, description="P of the rules' label in label_probs")
    flip_rate: float = Field(default=0.3, ge=0, le=1, description="chance per sample (× temperature) that a "
                             "sampled answer moves one level away from the rules' label")


EngineConfig = Annotated[Union[HFConfig, VLLMConfig, OpenAIConfig, RulesConfig], Field(discriminator="backend")]
BackendName = Literal["hf", "vllm", "openai", "rules"]
_ADAPTER: TypeAdapter[EngineConfig] = TypeAdapter(EngineConfig)


CONFIGS: tuple[type[_EngineBase], ...] = typing.get_args(typing.get_args(EngineConfig)[0])
# Where a job's engine options default otherwise than the config classes (which suit direct, exact use): jobs run
# bf16 where the CPU has it (``auto``) and larger batches.
JOB_DEFAULTS: dict[str, Any] = {"batch_size": 32, "dtype": "auto"}
NOT_JOB_OPTIONS = ("backend", "model_path", "torch_threads", "seed")  # the job's own (--model), or the glue's
_BOUNDS = ("ge", "gt", "le", "lt", "min_length", "max_length")


def backend_of(cls: type[_EngineBase]) -> str:
    return cls.model_fields["backend"].default


def job_options() -> dict[str, tuple[Any, Any]]:
    """Every backend's options as optional fields of one flat params model (what ``EngineParams`` is made of):
    ``None`` is the backend's own default, the description names the backends that take the option. Adding a
    backend is one config class in :data:`EngineConfig` and one line in ``engines.BACKENDS``."""
    first: dict[str, Any] = {}
    owners: dict[str, list[str]] = {}
    for cls in CONFIGS:
        for name, f in cls.model_fields.items():
            if name not in NOT_JOB_OPTIONS:
                first.setdefault(name, f)
                owners.setdefault(name, []).append(backend_of(cls))
    out: dict[str, tuple[Any, Any]] = {}
    for name, f in first.items():
        bounds = {a: getattr(m, a) for m in f.metadata for a in _BOUNDS if getattr(m, a, None) is not None}
        default = JOB_DEFAULTS.get(name)
        said = (f.description or name.replace("_", " ")).rstrip(".")
        backends = owners[name] if len(owners[name]) < len(CONFIGS) else ["every engine"]
        shown = f"; default {f.default}" if default is None and not f.is_required() and f.default is not None else ""
        out[name] = (typing.Optional[f.annotation],
                     Field(default=default, description=f"{said} ({', '.join(backends)}{shown}).", **bounds))
    return out


def options_for(backend: str, values: dict[str, Any]) -> dict[str, Any]:
    """The options of ``values`` that ``backend`` takes (set ones only: the rest keep the backend's defaults)."""
    cls = next(c for c in CONFIGS if backend_of(c) == backend)
    return {k: v for k, v in values.items() if k in cls.model_fields and v is not None}


def engine_config(**values: object) -> EngineConfig:
    """Validate a config from plain values (``backend`` picks the class; default ``hf``); drops ``None`` values so
    each backend's own defaults apply."""
    values = {k: v for k, v in values.items() if v is not None}
    values.setdefault("backend", "hf")
    return _ADAPTER.validate_python(values)


def config_from_json(text: str) -> EngineConfig:
    """The inverse of ``config.model_dump_json()`` (how configs travel to Spark workers)."""
    return _ADAPTER.validate_json(text)
