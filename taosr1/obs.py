"""Structured logs: one event name plus key=value fields, or JSON lines with ``TAOSR1_LOG_FORMAT=json``."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

_CONFIGURED = False


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {"ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)), "level": record.levelname,
               "logger": record.name, "event": record.getMessage()}
        doc.update(getattr(record, "fields", {}))
        return json.dumps(doc, default=str)


class _KvFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in getattr(record, "fields", {}).items())
        stamp = time.strftime("%H:%M:%S", time.gmtime(record.created))
        return f"{stamp} {record.levelname:<5} {record.name}: {record.getMessage()} {fields}".rstrip()


def get_logger(name: str) -> logging.Logger:
    """A logger under ``taosr1`` whose handler is set up once per process."""
    global _CONFIGURED
    if not _CONFIGURED:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_JsonFormatter() if os.environ.get("TAOSR1_LOG_FORMAT") == "json" else _KvFormatter())
        root = logging.getLogger("taosr1")
        root.addHandler(handler)
        root.setLevel(os.environ.get("TAOSR1_LOG_LEVEL", "INFO"))
        root.propagate = False
        _CONFIGURED = True
    return logging.getLogger(name if name.startswith("taosr1") else f"taosr1.{name}")


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log ``event`` with structured ``fields`` (kept as fields in JSON mode)."""
    logger.log(level, event, extra={"fields": fields})
