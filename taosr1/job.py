"""The one shape of every job: validated params → ``run(ctx, params)`` → :class:`Report` with counts that add up.

A stage is a small class: its ``Params`` (a pydantic model: enums as ``Literal``, bounds as ``Field``), the tables
it ``reads`` and ``writes`` (declared where a reader sees them), and ``run``. :func:`run_stage` opens the run record
*before* the stage reads any input, so a run that fails on bad input still leaves its ``job_runs`` row, then
checks the counts and records them with the table versions the stage committed. Adding a stage = copying one stage
module and registering it in :mod:`taosr1.stages`.
"""

from __future__ import annotations

import abc
import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Generic, Literal, TypeVar

from pydantic import (AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, create_model,
                      model_validator)
from pyspark.sql import DataFrame, SparkSession

from taosr1.engines.config import CONFIGS, EngineConfig, backend_of, engine_config, job_options, options_for
from taosr1.errors import CountMismatch, StaleRun
from taosr1.ids import new_id
from taosr1.io.tables import Mode, TableStore, Txn, WriteResult, txn_app_id
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


class Params(BaseModel):
    """Base of every stage's parameters: unknown fields are errors, values are validated on construction."""

    model_config = ConfigDict(extra="forbid", frozen=True)


P = TypeVar("P", bound=Params)


def _iso_day(v: str) -> str:
    try:
        return f"{dt.date.fromisoformat(v):%Y-%m-%d}"
    except ValueError as e:
        raise ValueError(f"a day is yyyy-MM-dd, got {v!r} ({e})") from None


Day = Annotated[str, AfterValidator(_iso_day)]
# Ids become partition values, folder names and Delta predicates: letters, digits and . _ @ : - only.
Ident = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@:-]{0,127}$")]


def _empty_is_none(v: object) -> object:
    return None if isinstance(v, str) and v.strip() in ("", "None") else v


# An optional id where a scheduler passes "" for "not given".
OptionalIdent = Annotated[Ident | None, BeforeValidator(_empty_is_none)]


class _EngineParamsBase(Params):
    """What every model-running stage takes: the engine, the model, the error budget and every backend's options
    (generated from ``engines/config.py``, so a new backend's options appear on every engine job by themselves)."""

    @model_validator(mode="before")
    @classmethod
    def _unset_is_not_given(cls, values: Any) -> Any:
        """A scheduler renders an unset option as ``""`` (Airflow's ``--base-url={{ params.base_url }}``): that is
        "not given", so the job's default applies, never a failed ``min_length``."""
        if isinstance(values, dict):
            return {k: v for k, v in values.items() if _empty_is_none(v) is not None}
        return values

    def engine_config(self, warehouse_root: str) -> EngineConfig:
        """The backend's validated config; options that backend does not take are left out."""
        from taosr1.model.registry import default_model

        path = self.model or default_model(warehouse_root)  # type: ignore[attr-defined]
        backend = self.engine  # type: ignore[attr-defined]
        values = {k: getattr(self, k) for k in JOB_OPTION_NAMES}
        return engine_config(backend=backend, model_path=path if backend != "rules" else "rules",
                             **options_for(backend, values))


JOB_OPTION_NAMES = tuple(job_options())
EngineParams = create_model(
    "EngineParams", __base__=_EngineParamsBase, __module__=__name__,
    engine=(Literal[tuple(backend_of(c) for c in CONFIGS)], Field(  # type: ignore[misc]
        default="hf", description=" | ".join(backend_of(c) for c in CONFIGS))),
    model=(str | None, Field(default=None, description="Model folder (default $TAOSR1_MODEL, else the "
                             "warehouse's champion, else <warehouse>/models/taosr1-builtin).")),
    max_error_share=(float, Field(default=0.01, ge=0, le=1, description="Error budget: the run fails, publishing "
                                  "nothing, when more than this share of rows fail in the engine.")),
    **job_options())


@dataclass
class Counts:
    """``rows_in == kept + quarantined + sum(filtered)``; ``extra`` holds figures outside the balance."""

    rows_in: int = 0
    kept: int = 0
    quarantined: int = 0
    filtered: dict[str, int] = field(default_factory=dict)
    extra: dict[str, int] = field(default_factory=dict)

    def adds_up(self) -> bool:
        return self.rows_in == self.kept + self.quarantined + sum(self.filtered.values())

    def check(self, what: str) -> None:
        """Raise :class:`CountMismatch` unless the balance holds: rows would be lost otherwise."""
        if not self.adds_up():
            raise CountMismatch(f"{what}: in {self.rows_in} != kept {self.kept} + quarantined {self.quarantined} "
                                f"+ filtered {self.filtered}")

    def as_dict(self) -> dict[str, int]:
        return {"rows_in": self.rows_in, "kept": self.kept, "quarantined": self.quarantined,
                **{f"filtered:{k}": v for k, v in self.filtered.items()}, **self.extra}


@dataclass
class Report:
    """What a run did: its id, counts, the table versions it committed and stage-specific facts (``info``)."""

    stage: str
    run_id: str
    ds: str | None = None
    counts: Counts = field(default_factory=Counts)
    versions: dict[str, int] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


SYSTEM_TABLES = ("job_runs",)  # the run record: every stage may read it (resume points, lineage)


class ReadGuard:
    """The store as a running stage sees it: reading a table the stage does not declare (``reads`` or ``writes``)
    is refused, so ``Stage.reads`` is what the stage reads, down to helpers several layers below it."""

    def __init__(self, store: TableStore, stage: str, allowed: tuple[str, ...]) -> None:
        self._store, self._stage, self._allowed = store, stage, frozenset((*allowed, *SYSTEM_TABLES))

    def _check(self, table: str) -> None:
        if table not in self._allowed:
            raise RuntimeError(f"stage {self._stage} reads '{table}' but declares reads/writes "
                               f"{tuple(sorted(self._allowed - set(SYSTEM_TABLES)))}")

    def read(self, table: str, *args: Any, **kwargs: Any) -> DataFrame:
        self._check(table)
        return self._store.read(table, *args, **kwargs)

    def delta(self, table: str, *args: Any, **kwargs: Any) -> Any:
        self._check(table)
        return self._store.delta(table, *args, **kwargs)

    def count(self, table: str, *args: Any, **kwargs: Any) -> int:
        self._check(table)
        return self._store.count(table, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # everything else is the store's own
        return getattr(self._store, name)


@dataclass
class Context:
    """What a running stage holds: the session, the store and its report (counts, versions) being filled in."""

    spark: SparkSession
    store: TableStore
    report: Report
    writes: tuple[str, ...] = ()
    tracker: Any = None  # taosr1.tracking.Tracker of a tracked stage's MLflow run (None: tracking off)
    txn_version: int = 0  # the run's start in ms: the version of its Delta app transactions
    _seq: dict[str, int] = field(default_factory=dict)
    scratch: dict[str, Any] = field(default_factory=dict)  # what a run resolves once (e.g. its engine and model)

    @property
    def run_id(self) -> str:
        return self.report.run_id

    def txn(self, table: str) -> Txn | None:
        """The app transaction of this run's next write to ``table``: ``taosr1/<stage>/<day or run>/<table>#<n>``."""
        if not self.txn_version:
            return None
        self._seq[table] = self._seq.get(table, 0) + 1
        return Txn(txn_app_id(self.report.stage, self.report.ds or self.report.run_id, table, self._seq[table]),
                   self.txn_version)

    def _published(self, w: WriteResult) -> WriteResult:
        if w.skipped:
            raise StaleRun(f"{self.report.stage} {self.run_id}: a newer run of "
                           f"{self.report.ds or self.report.run_id} committed '{w.table}' first; this run publishes "
                           f"nothing more (its job_runs row says so)")
        return w

    def write(self, table: str, df: DataFrame, mode: Mode = "append",
              replace: dict[str, str] | None = None) -> WriteResult:
        """Write a declared table through the store and remember the committed version for the run record."""
        self._declared(table)
        w = self._published(self.store.write(table, df, mode, replace, txn=self.txn(table)))
        self.report.versions[table] = w.version
        return w

    def write_together(self, frames: list[tuple[str, DataFrame, Mode, dict[str, str] | None]]) -> list[WriteResult]:
        """Several tables as one unit: staged first (:mod:`taosr1.io.staging`), so a kill between the commits is
        completed by the next run of this stage instead of leaving one table new and the other old."""
        from taosr1.io import staging

        for table, *_ in frames:
            self._declared(table)
        frames = [(t, df.cache(), m, r) for t, df, m, r in frames]  # the staged rows are the committed rows
        where = staging.stage(self.store.root, self.report.stage, self.report.ds or self.run_id, self.txn_version,
                              frames)
        try:
            out = [self.write(t, df, m, r) for t, df, m, r in frames]
        finally:
            for _, df, _, _ in frames:
                df.unpersist()
        staging.clear(where)
        return out

    def quarantine(self, rejected: DataFrame, *, stage: str | None = None, ds: str | None = None,
                   key: Any = None) -> WriteResult:
        """Replace this run's quarantine partition with ``rejected`` (columns ``raw``, ``reason``, ``detail``)."""
        from taosr1.quarantine import publish

        self._declared("quarantine")
        w = self._published(publish(self.store, rejected, stage=stage or self.report.stage,
                                    ds=ds or self.report.ds or self.run_id, run_id=self.run_id, key=key,
                                    txn=self.txn("quarantine")))
        self.report.versions["quarantine"] = w.version
        return w


    def _declared(self, table: str) -> None:
        if table not in self.writes:
            raise RuntimeError(f"stage {self.report.stage} writes '{table}' but declares writes={self.writes}")


class Stage(abc.ABC, Generic[P]):
    """One job: ``Params`` in, tables declared, :class:`Report` out."""

    name: ClassVar[str]
    Params: ClassVar[type[Params]]
    reads: ClassVar[tuple[str, ...]] = ()
    writes: ClassVar[tuple[str, ...]] = ()
    tracked: ClassVar[bool] = False  # an MLflow run per stage run (params, counts, what the stage logs)

    def run_id(self, params: P) -> str:
        """The id of a run: a stage whose params name one (a corpus id, a pass@N run id) uses it."""
        return new_id(self.name)

    def record_id(self, run_id: str) -> str:
        """The ``job_runs`` key of one attempt; stages whose runs resume or repeat make it unique per attempt."""
        return run_id

    def ds(self, params: P) -> str | None:
        return getattr(params, "ds", None)

    @abc.abstractmethod
    def run(self, ctx: Context, params: P) -> None:
        """Do the work; fill ``ctx.report.counts`` (checked afterwards) and ``ctx.report.info``."""


def run_stage(stage: Stage[P], store: TableStore, params: P) -> Report:
    """Run a stage under a ``job_runs`` record: written as ``running`` before the stage reads any input, closed as
    ``succeeded`` or ``failed`` (with the error) after its commits, so a run killed in between stays visible as
    ``running`` and a run that fails on bad input is on record."""
    run_id = stage.run_id(params)
    report = Report(stage.name, run_id, stage.ds(params))
    record = stage.record_id(run_id)
    started = dt.datetime.now(dt.timezone.utc)
    from taosr1.repair import repair_dead_runs

    repaired = repair_dead_runs(store, stage.name, stage.writes, report.ds, run_id, record)
    if repaired:
        report.info["repaired"] = repaired
    _record(store, stage.name, record, report, params, started, "running", None)
    error: str | None = None
    try:
        with _tracked(stage, store, run_id, params) as tracker:
            guarded = ReadGuard(store, stage.name, (*stage.reads, *stage.writes))
            stage.run(Context(store.spark, guarded, report, stage.writes, tracker,  # type: ignore[arg-type]
                              txn_version=txn_version(started)), params)
            report.counts.check(f"{stage.name} {run_id}")
            if tracker is not None:
                tracker.metrics(report.counts.as_dict(), "rows.")
                tracker.metrics({k: v for k, v in report.info.items() if not isinstance(v, dict)})
    except BaseException as e:
        error = f"{type(e).__name__}: {e}"[:2000]
        raise
    finally:
        _record(store, stage.name, record, report, params, started, "failed" if error else "succeeded", error)
    log_event(log, f"{stage.name}.done", run_id=run_id, ds=report.ds, **report.counts.as_dict())
    return report


def txn_version(started: dt.datetime) -> int:
    """A run's app-transaction version: its start in ms (later runs of a key have higher versions)."""
    return int(started.timestamp() * 1000)


def _tracked(stage: Stage, store: TableStore, run_id: str, params: Params):
    """The stage's MLflow run where it is tracked and tracking is on, else a no-op context."""
    import contextlib

    if not stage.tracked:
        return contextlib.nullcontext(None)
    from taosr1.tracking import stage_run

    return stage_run(store.root, stage.name, run_id, params.model_dump(mode="json"))


def _record(store: TableStore, job: str, record_id: str, report: Report, params: Params, started: dt.datetime,
            status: str, error: str | None) -> None:
    from taosr1 import contracts
    from taosr1.io.liveness import driver_id

    row = dict(job=job, run_id=record_id, ds=report.ds, status=status, started_at=started,
               finished_at=dt.datetime.now(dt.timezone.utc),
               params=json.dumps({**params.model_dump(mode="json"), **report.info.get("params", {}),
                                  "_driver": driver_id(), "_txn": txn_version(started)}, sort_keys=True, default=str),
               counts={k: int(v) for k, v in report.counts.as_dict().items()},
               table_versions={k: int(v) for k, v in report.versions.items()}, error=error)
    df = store.spark.createDataFrame([row], contracts.load("job_runs").schema)
    if status == "running":
        store.write("job_runs", df, "append")
    else:  # close the run's own row (one row per run)
        store.merge("job_runs", df, ["job", "run_id"])
