"""Relevance engines: one interface (``label_probs`` and ``sample``), four backends (hf, vllm, openai, rules).

The registry maps a backend name to its class, imported only when that backend is built.
"""

from __future__ import annotations

import importlib

from taosr1.engines.base import Engine, Sample
from taosr1.engines.config import (BackendName, EngineConfig, HFConfig, OpenAIConfig, RulesConfig, VLLMConfig,
                                   config_from_json, engine_config)

BACKENDS: dict[str, str] = {
    "hf": "taosr1.engines.hf:HFEngine",
    "vllm": "taosr1.engines.vllm_adapter:VLLMEngine",
    "openai": "taosr1.engines.openai_compat:OpenAIEngine",
    "rules": "taosr1.engines.rules:RulesEngine",
}


def create_engine(config: EngineConfig) -> Engine:
    """Build the configured backend (imports only what that backend needs)."""
    module, cls = BACKENDS[config.backend].split(":")
    return getattr(importlib.import_module(module), cls)(config)


__all__ = ["BACKENDS", "BackendName", "Engine", "EngineConfig", "HFConfig", "OpenAIConfig", "RulesConfig", "Sample",
           "VLLMConfig", "config_from_json", "create_engine", "engine_config"]
