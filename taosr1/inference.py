"""Run an engine inside Spark: loaded once per executor Python process, batched, row identity kept.

``with_label_probs(df, config)`` adds ``p4, p3, p2, p1`` and ``error`` to every row; ``with_samples(df, config,
n=N)`` adds ``n`` sampled completions per row. Both go through one prologue (columns, threads per task, the config
shipped as JSON) and, as Ray Data LLM's stages do:
* a failing batch is bisected and retried, so one poisonous row becomes one row with ``error`` set instead of a
  failed job; the caller quarantines those rows and checks that every input row came back;
* progress: every batch logs rows, rows/s and an ETA for its task in the executor log (Spark's own progress bar
  and UI show the stage).
"""

from __future__ import annotations

import os
import re
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql.types import DoubleType, IntegerType, StringType, StructField, StructType

from taosr1.engines import Engine, EngineConfig, config_from_json, create_engine
from taosr1.errors import EngineUnavailable, Taosr1Error
from taosr1.obs import get_logger, log_event
from taosr1.pairs import PRODUCT_FIELDS

log = get_logger(__name__)
T = TypeVar("T")
_ENGINES: dict[str, Engine] = {}
PROB_COLS = ("p4", "p3", "p2", "p1")
SAMPLE_COLS = (("sample_idx", IntegerType()), ("text", StringType()), ("logprob", DoubleType()),
               ("n_tokens", IntegerType()))


FATAL_NAMES = {"APIConnectionError", "APITimeoutError", "AuthenticationError", "PermissionDeniedError",
               "NotFoundError", "OutOfMemoryError",
               "EngineDeadError"}  # vLLM's engine core died: Ray Data LLM's vLLMEngineStage treats it as fatal


def is_fatal(e: BaseException) -> bool:
    """Errors that no retry or bisection fixes: the engine itself cannot serve (unreachable server, lost
    credentials, a model the server does not have, out of memory)."""
    return (isinstance(e, (EngineUnavailable, MemoryError, ConnectionError))
            or bool({t.__name__ for t in type(e).__mro__} & FATAL_NAMES))


def engine_for(config: EngineConfig) -> Engine:
    """The process-wide engine for a config: built on first use, then reused by every task in this worker. A
    failure to build it is fatal (:class:`EngineUnavailable`), never a row error."""
    key = config.key()
    if key not in _ENGINES:
        started = time.time()
        try:
            _ENGINES[key] = create_engine(config)
        except Exception as e:  # noqa: BLE001 - whatever the backend raised, the job cannot go on
            raise EngineUnavailable(f"the {config.backend} engine for {config.model_path} could not start: "
                                    f"{type(e).__name__}: {e}"[:1000]) from e
        log_event(log, "engine.loaded", backend=config.backend, model=config.model_path,
                  seconds=round(time.time() - started, 1))
    return _ENGINES[key]


def run_bisected(fn: Callable[[list[Any]], Sequence[T]], items: list[Any], retries: int = 1
                 ) -> list[tuple[T | None, str | None]]:
    """``fn`` over ``items``; on failure split the batch in halves until single items, retry those, and return
    ``(result, None)`` or ``(None, error)`` per item, in order."""
    if not items:
        return []
    try:
        out = list(fn(items))
        if len(out) != len(items):
            raise RuntimeError(f"engine returned {len(out)} results for {len(items)} inputs")
        return [(o, None) for o in out]
    except Exception as e:  # noqa: BLE001 - any engine error becomes a row error, never a dead job
        if is_fatal(e):  # the engine is gone: no bisection, the job fails at once
            raise e if isinstance(e, EngineUnavailable) else EngineUnavailable(f"{type(e).__name__}: {e}"[:1000]) from e
        if len(items) == 1:
            for _ in range(retries):
                try:
                    return [(list(fn(items))[0], None)]
                except Exception as again:  # noqa: BLE001
                    e = again
            return [(None, f"{type(e).__name__}: {e}"[:500])]
        mid = len(items) // 2
        return run_bisected(fn, items[:mid], retries) + run_bisected(fn, items[mid:], retries)


def engine_layout(spark) -> tuple[int, int] | None:
    """``(partitions, threads)`` for an engine stage: one engine per executor using all its cores, not one per
    Python worker (each loads the whole model; on 2 cores two workers of one thread each load it twice and decode
    no faster). Local mode: one partition, ``local[N]``'s N threads. A cluster: one partition per executor, the
    executor's cores as threads. ``None`` on Spark Connect (no way to see the executors from the client)."""
    from taosr1.spark import is_remote

    if is_remote(spark):
        return None
    sc = spark.sparkContext
    if sc.master.startswith("local"):
        return 1, max(1, sc.defaultParallelism)
    try:
        executors = max(1, sc._jsc.sc().getExecutorMemoryStatus().size() - 1)  # minus the driver
    except Exception:  # noqa: BLE001 - py4j differences; fall back to one task per core
        return max(1, sc.defaultParallelism), 1
    cores = int(sc.getConf().get("spark.executor.cores", "0") or 0) or max(1, sc.defaultParallelism // executors)
    task_cpus = int(sc.getConf().get("spark.task.cpus", "1") or 1)
    return executors, max(cores, task_cpus)


def _prologue(df: DataFrame, config: EngineConfig, added: list[StructField], keys: Sequence[str],
              needs: Sequence[str] = ("query", "title")) -> tuple[DataFrame, str, StructType]:
    """Shared by both runners: needed columns; rows laid out one partition per executor (hashed by ``keys[0]``, the
    query, and sorted by ``keys``, so a query's pairs sit together and the order is stable); engine threads = the
    executor's cores; the output schema."""
    missing = [c for c in needs if c not in df.columns]
    if missing:
        raise ValueError(f"the engine needs column(s) {missing}")
    layout = engine_layout(df.sparkSession)
    if layout is not None:
        parts, threads = layout
        df = df.repartition(parts, keys[0]).sortWithinPartitions(*keys)  # a query's pairs in one partition
        if config.torch_threads is None:
            config = config.model_copy(update={"torch_threads": threads})
    elif config.torch_threads is None:
        config = config.model_copy(update={"torch_threads": 1})
    schema = StructType(list(df.schema.fields) + added + [StructField("error", StringType())])
    return df, config.model_dump_json(), schema


def engine_in_worker(cfg_json: str, order: str, row_messages: Callable[[dict], list[dict]] | None = None
                     ) -> tuple[Engine, Callable[[dict], str]]:
    """In the executor: the engine (once per process) and the prompt builder for its tokenizer (``row_messages``: a
    row's chat messages other than the relevance prompt, e.g. the query-type tagger's)."""
    from taosr1.model.loading import prompt_variant
    from taosr1.prompts import build_messages, render_prompt

    config = config_from_json(cfg_json)
    engine = engine_for(config)
    variant = "long" if config.backend == "rules" else prompt_variant(config.model_path)

    def make(row: dict) -> str:
        if row_messages is not None:
            return render_prompt(engine.tokenizer, row_messages(row))
        product = {k: row.get(k) for k in PRODUCT_FIELDS}
        messages = build_messages(row["query"], product, order, variant)  # type: ignore[arg-type]
        if row.get("teacher_hint"):  # a teacher is told the human label and the rules (our text, not the pair's)
            messages[-1]["content"] += "\n" + row["teacher_hint"]
        return render_prompt(engine.tokenizer, messages)

    return engine, make


def with_label_probs(df: DataFrame, config: EngineConfig, *, order: str = "post_cot", expected_rows: int = 0,
                     gpus_per_task: float | None = None) -> DataFrame:
    """Add label probabilities (and ``error``) to each row; needs ``query`` plus product columns in ``df``.
    ``expected_rows`` only feeds the ETA in the logs."""
    keys = [c for c in ("query", "query_id", "product_id") if c in df.columns]
    df, cfg_json, out_schema = _prologue(df, config, [StructField(c, DoubleType()) for c in PROB_COLS], keys)
    try:
        parts = max(1, df.rdd.getNumPartitions()) if expected_rows else 1
    except Exception:  # noqa: BLE001 - Spark Connect has no RDD API; the ETA is then per whole input
        parts = 1
    per_task = expected_rows / parts if expected_rows else 0

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        engine, make_prompt = engine_in_worker(cfg_json, order)
        batch_size = engine.config.batch_size
        done, started = 0, time.time()
        for pdf in batches:
            rows = pdf.to_dict("records")
            prompts: list[str | None] = []
            errors: list[str | None] = []
            for r in rows:
                try:
                    prompts.append(make_prompt(r))
                    errors.append(None)
                except Exception as e:  # noqa: BLE001
                    prompts.append(None)
                    errors.append(f"prompt: {type(e).__name__}: {e}"[:500])
            ok = [i for i, p in enumerate(prompts) if p is not None]
            probs: list[list[float | None]] = [[None] * 4 for _ in rows]
            for start in range(0, len(ok), batch_size):
                idx = ok[start: start + batch_size]
                results = run_bisected(lambda ps: list(engine.label_probs(ps)), [prompts[i] for i in idx])
                for i, (res, err) in zip(idx, results):
                    if err is None and not (np.all(np.isfinite(res)) and abs(float(np.sum(res)) - 1.0) < 1e-3):
                        err = f"probabilities not finite or not summing to 1: {[float(x) for x in res]}"
                    if err is None:
                        probs[i] = [float(x) for x in res]
                    else:
                        errors[i] = err
            out = pdf.assign(**{c: [p[j] for p in probs] for j, c in enumerate(PROB_COLS)}, error=errors)
            done += len(out)
            rate = done / max(time.time() - started, 1e-9)
            eta = max(per_task - done, 0) / rate if per_task else None
            log_event(log, "label_probs.batch", rows=len(out), task_rows=done, rows_per_s=round(rate, 1),
                      eta_s=None if eta is None else round(eta, 1), errors=sum(e is not None for e in errors))
            _fault_delay()
            yield out

    if gpus_per_task:
        from pyspark.resource import ResourceProfileBuilder, TaskResourceRequests

        profile = ResourceProfileBuilder().require(TaskResourceRequests().cpus(1).resource("gpu", gpus_per_task)).build
        return df.mapInPandas(score, out_schema, profile=profile)
    return df.mapInPandas(score, out_schema)


def with_samples(df: DataFrame, config: EngineConfig, *, n: int, temperature: float = 1.0, top_p: float = 1.0,
                 max_new_tokens: int = 256, seed: int = 0, order: str = "post_cot",
                 messages: Callable[[dict], list[dict]] | None = None) -> DataFrame:
    """``n`` sampled completions per input row: output has ``n`` rows per input (``sample_idx`` 0..n-1), or one row
    with ``error`` set when the engine failed on that row. Each row is seeded from ``seed`` and its
    (query_id, product_id), so a pair's samples do not depend on how Spark batched it. ``messages``: each row's
    chat messages instead of the relevance prompt (a module-level function, shipped to the executors)."""
    keys = [c for c in ("query_id", "product_id", "query") if c in df.columns]
    df, cfg_json, out_schema = _prologue(df, config, [StructField(c, t) for c, t in SAMPLE_COLS], keys,
                                         ("query", "title") if messages is None else ("query",))
    columns = [f.name for f in out_schema.fields]

    def run(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        engine, make_prompt = engine_in_worker(cfg_json, order, messages)
        done, started = 0, time.time()
        for pdf in batches:
            out = sample_frame(engine, make_prompt, pdf, n=n, temperature=temperature, top_p=top_p,
                               max_new_tokens=max_new_tokens, seed=seed)
            done += len(pdf)
            log_event(log, "sample.batch", rows=len(pdf), task_rows=done,
                      rows_per_s=round(done / max(time.time() - started, 1e-9), 2), n=n)
            _fault_delay()
            yield out.reindex(columns=columns)

    return df.mapInPandas(run, out_schema)


def _fault_delay() -> None:
    """Fault-injection hook for the executor-loss tests: ``TAOSR1_FAULT_BATCH_DELAY_S`` (set on executors with
    ``spark.executorEnv.``) slows every batch so a worker can be killed while a stage runs."""
    delay = os.environ.get("TAOSR1_FAULT_BATCH_DELAY_S")
    if delay:
        time.sleep(float(delay))


def row_seed(seed: int, rec: dict) -> int:
    """A pair's sampling seed: the run's seed and the pair's key, never its position in a batch."""
    return seed + zlib.crc32(f"{rec.get('query_id')}|{rec.get('product_id')}".encode())


def sample_frame(engine: Engine, make_prompt: Callable[[dict], str], pdf: pd.DataFrame, *, n: int,
                 temperature: float, top_p: float, max_new_tokens: int, seed: int) -> pd.DataFrame:
    """``n`` samples for every row of one Arrow batch in *one* engine call (vLLM batches across pairs; hf runs
    its batched decoder), each row seeded by its pair; a failing call is bisected down to the rows that fail."""
    recs = pdf.to_dict("records")
    items, failed = [], {}
    for i, rec in enumerate(recs):
        try:
            items.append((i, make_prompt(rec), row_seed(seed, rec)))
        except Exception as e:  # noqa: BLE001
            failed[i] = f"prompt: {type(e).__name__}: {e}"[:500]
    results = run_bisected(lambda its: engine.sample([p for _, p, _ in its], n=n, temperature=temperature,
                                                     top_p=top_p, max_new_tokens=max_new_tokens, seed=seed,
                                                     seeds=[s for _, _, s in its]), items)
    by_row = {it[0]: res for it, res in zip(items, results)}
    rows: list[dict] = []
    for i, rec in enumerate(recs):
        samples, err = by_row.get(i, (None, failed.get(i)))
        if err is not None or samples is None:
            rows.append({**rec, "sample_idx": None, "text": None, "logprob": None, "n_tokens": None,
                         "error": err or "no samples"})
            continue
        rows.extend({**rec, "sample_idx": k, "text": s.text, "logprob": s.logprob, "n_tokens": len(s.token_logprobs),
                     "error": None} for k, s in enumerate(samples))
    return pd.DataFrame(rows, columns=[*pdf.columns, "sample_idx", "text", "logprob", "n_tokens", "error"])


@contextmanager
def engine_failures() -> Iterator[None]:
    """Around a Spark action that runs an engine: an executor's :class:`EngineUnavailable` (which Spark wraps in
    its own exception) comes back as itself, so the run is recorded with the reason and the CLI prints one line."""
    try:
        yield
    except Taosr1Error:
        raise
    except Exception as e:  # noqa: BLE001 - Py4J / PythonException wrap the executor's error as text
        m = re.search(r"EngineUnavailable: (.+)", str(e))
        if m:
            where = os.environ.get("TAOSR1_SPARK_LOG")
            raise EngineUnavailable(m.group(1).strip()[:1000] + (f" (the executors' report: {where})" if where
                                                                 else "")) from None
        raise
