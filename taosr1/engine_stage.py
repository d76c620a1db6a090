"""The one base of every stage that runs a model over rows (scoring, pass@N, the engine teacher, calibration, the
query-type tagger, evaluation), between :class:`taosr1.job.Stage` and :mod:`taosr1.inference`.

Why one base: a row the engine fails on must mean the same thing in every stage, as in Ray Data LLM's
``vLLMEngineStage`` (which owns the engine, the error column and the fatal list). Here :meth:`EngineStage.run_engine`

* resolves the engine config and the model (:class:`~taosr1.model.reference.ModelRef`) once per run;
* runs the engine over the rows (label probabilities or samples), inside :func:`~taosr1.inference.engine_failures`,
  so a dead engine (:class:`~taosr1.errors.EngineUnavailable`, vLLM's ``EngineDeadError``, an unreachable server)
  fails the run at once with one line;
* checks that every row it handed over came back (else :class:`~taosr1.errors.CountMismatch`);
* applies the error budget: over it, the failed rows go to ``quarantine`` under the failed run's own partition
  (``ds`` = ``<run id>.failed-<attempt>``, so no good partition is replaced) and the run fails with
  :class:`~taosr1.errors.ErrorBudgetExceeded`, publishing nothing else; within it, the stage gets the failed rows
  shaped as ``engine_error`` quarantine rows (the engine's message as ``detail``) to publish with its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from taosr1.engines.config import EngineConfig
from taosr1.errors import CountMismatch, ErrorBudgetExceeded
from taosr1.job import Context, P, Stage

ENGINE_ERROR = "engine_error"


@dataclass
class EngineRows:
    """What one engine pass gave back: the rows without error, all rows, and the failed ones (quarantine-shaped)."""

    ok: DataFrame
    all: DataFrame  # every row the engine gave back (``error`` set on the failed ones), persisted
    failed: DataFrame  # raw, reason = engine_error, detail = the engine's message, plus the key columns

    def release(self) -> None:
        self.all.unpersist()


class EngineStage(Stage[P]):
    """A stage that runs a model: subclasses call :meth:`engine` and :meth:`run_engine`, never ``inference``."""

    def engine(self, ctx: Context, params: Any, **resolve: Any) -> EngineConfig:
        """The run's engine config (``params.engine_config``), with its model resolved once (``resolve``: e.g.
        ``beta_cum`` for :meth:`ModelRef.resolve`): the backend and the model version land in the run record."""
        cached = ctx.scratch.get("engine")
        if cached is not None:
            return cached
        from taosr1.model.reference import ModelRef

        config = params.engine_config(ctx.store.root)
        model = ModelRef.resolve(config.model_path, backend=config.backend, **resolve)
        ctx.scratch["engine"], ctx.scratch["model"] = config, model
        ctx.report.info.setdefault("params", {}).update(engine_backend=config.backend,
                                                        engine_model_version=model.version)
        return config

    @staticmethod
    def model(ctx: Context) -> Any:
        """The :class:`~taosr1.model.reference.ModelRef` resolved by :meth:`engine`."""
        return ctx.scratch["model"]

    def run_engine(self, ctx: Context, config: EngineConfig, rows: DataFrame, *,
                   kind: Literal["label_probs", "samples"], key: Sequence[str], what: str, max_error_share: float,
                   rows_in: int | None = None, **options: Any) -> EngineRows:
        """Run the engine over ``rows`` (one row per ``key``) and settle every row: see the module docstring.
        ``options`` go to :func:`~taosr1.inference.with_label_probs` or :func:`~taosr1.inference.with_samples`
        (``n``, ``temperature``, ``order``, ...). Samples come back ``n`` rows per key, or one row with ``error``."""
        from pyspark import StorageLevel

        from taosr1.inference import engine_failures, with_label_probs, with_samples

        key = list(key)
        n_in = rows.count() if rows_in is None else rows_in
        run = with_label_probs if kind == "label_probs" else with_samples
        out = run(rows, config, **options).persist(StorageLevel.MEMORY_AND_DISK)
        with engine_failures():
            n_back = out.select(*key).distinct().count() if kind == "samples" else out.count()
        if n_back != n_in:  # the engine glue must hand back every row it was given, once
            out.unpersist()
            raise CountMismatch(f"{what}: {n_in} rows went to the engine, {n_back} came back")
        failed = engine_error_rows(out.where("error IS NOT NULL"), key)  # samples: one error row per key
        n_failed = failed.count()
        if n_in and n_failed / n_in > max_error_share:
            where = failed_partition(ctx)
            ctx.quarantine(failed, stage=self.name, ds=where, key=F.concat_ws("|", *key))
            first = failed.select("detail").limit(1).collect()
            out.unpersist()
            raise ErrorBudgetExceeded(
                f"{what}: {n_failed} of {n_in} rows failed in the engine ({n_failed / n_in:.1%} > the error budget "
                f"{max_error_share:.1%}); nothing was published; the failed rows are in quarantine "
                f"(stage {self.name}, ds {where}), the first: {first[0]['detail'] if first else ''}"[:1500])
        return EngineRows(ok=out.where("error IS NULL"), all=out, failed=failed)


def failed_partition(ctx: Context) -> str:
    """The quarantine ``ds`` of a failed attempt's rows: its own, never a partition a good run published."""
    return f"{ctx.run_id}.failed-{ctx.txn_version}"


def engine_error_rows(failed: DataFrame, key: Sequence[str]) -> DataFrame:
    """Failed rows as quarantine rows: ``raw`` is the row's key and query as JSON, ``detail`` the engine's
    message."""
    fields = [c for c in (*key, "query", "label") if c in failed.columns]
    extra = [c for c in ("query",) if c in failed.columns and c not in key]
    return failed.select(*key, *extra, F.to_json(F.struct(*fields)).alias("raw"), F.lit(ENGINE_ERROR).alias("reason"),
                         F.col("error").alias("detail"))
