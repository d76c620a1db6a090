"""Relevance engines: one interface (``label_probs`` and ``sample``), three backends (hf, vllm, openai)."""

from taosr1.engines.base import Engine, EngineConfig, Sample, create_engine

__all__ = ["Engine", "EngineConfig", "Sample", "create_engine"]
