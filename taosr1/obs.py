"""Structured logs: one event name plus key=value fields, or JSON lines with ``TAOSR1_LOG_FORMAT=json``."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
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



@contextlib.contextmanager
def logs_to_file(path: str | os.PathLike, console_level: int = logging.WARNING) -> Iterator[Path]:
    """While open: the project's INFO lines, Python warnings and the libraries' progress bars go to ``path``; the
    terminal keeps the command's own lines (and warnings). For commands whose output a person reads (the demo)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    get_logger("taosr1")
    root = logging.getLogger("taosr1")
    consoles = [h for h in root.handlers if type(h) is logging.StreamHandler]
    levels = [h.level for h in consoles]
    for h in consoles:
        h.setLevel(console_level)
    file = logging.FileHandler(out, encoding="utf-8")
    file.setFormatter(_KvFormatter())
    root.addHandler(file)
    warn = logging.getLogger("py.warnings")
    warn.addHandler(file)
    warn_propagate, warn.propagate = warn.propagate, False
    logging.captureWarnings(True)
    env = {"HF_HUB_DISABLE_PROGRESS_BARS": "1", "TQDM_DISABLE": "1"}
    saved_env = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    bars = _library_bars(False)
    try:
        with contextlib.redirect_stderr(file.stream):  # bars written straight to stderr (tqdm.auto) land here too
            yield out
    finally:
        _library_bars(bars)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        logging.captureWarnings(False)
        warn.removeHandler(file)
        warn.propagate = warn_propagate
        root.removeHandler(file)
        file.close()
        for h, lv in zip(consoles, levels):
            h.setLevel(lv)


def _library_bars(on: bool) -> bool:
    """Turn transformers' and datasets' progress bars on or off; returns whether transformers' were on."""
    was = True
    try:
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        (hf_logging.enable_progress_bar if on else hf_logging.disable_progress_bar)()
    except ImportError:
        pass
    try:
        from datasets.utils import logging as ds_logging

        (ds_logging.enable_progress_bar if on else ds_logging.disable_progress_bar)()
    except ImportError:
        pass
    return was
