"""``jobs/promote_model.py``: the champion/challenger gate of the training loop.

The challenger (the loop's last model) replaces the champion only if, in one evaluation that scored both on the
same pairs, it beats the champion by the configured margins in macro-F1 *and* NDCG@10. Either way the decision is
a row of ``gold/model_promotions`` with its reason, and the run ends green: losing is a result, not a failure.
With no champion yet the challenger is promoted. Where MLflow is installed the champion is also the registered
model version carrying the alias ``champion``.

A champion change is a compare-and-swap on the champion the run read: each promotion commits with the Delta
application transaction ``taosr1/champion/<registry>`` at one more than the version it read, checked and committed
under the registry's lock (a local warehouse), so of two promotions that decided against the same champion only the
first lands; the loser records a refusal, moves no alias and ends green.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field
from pyspark.sql import functions as F

from taosr1 import contracts
from taosr1.errors import InputError
from taosr1.io.tables import TableStore, Txn, WriteResult
from taosr1.job import Context, Params, Stage
from taosr1.model.registry import REGISTRY, Champion, champion, resolved_path, stored_path
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


class PromoteParams(Params):
    challenger: str = Field(description="The challenger's model folder (the loop's last model).")
    min_gain_macro_f1: float = Field(default=0.005, ge=-1, le=1, description="Macro-F1 must beat the champion's by "
                                     "at least this much (negative: a tolerated loss).")
    min_gain_ndcg_10: float = Field(default=0.0, ge=-1, le=1, description="NDCG@10 must beat the champion's by at "
                                    "least this much.")
    registry: str = Field(default=REGISTRY, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$",
                          description="Registered model name.")


@dataclass(frozen=True)
class Evidence:
    """One evaluation's rows for the challenger and (if any) the champion."""

    eval_id: str
    challenger: dict
    champion: dict | None


def latest_evidence(store: TableStore, challenger_version: str, champ: Champion | None) -> Evidence:
    """The newest evaluation that scored the challenger, with the champion's row of that same evaluation."""
    if not store.exists("eval_metrics"):
        raise InputError("no evaluation yet: run `taosr1 evaluate --champion --models NAME=DIR` first")
    models = store.read("eval_metrics").where(F.col("kind") == "model")
    newest = (models.where(F.col("model_version") == challenger_version).orderBy(F.desc("created_at"))
              .select("eval_id").limit(1).collect())
    if not newest:
        raise InputError(f"no evaluation scored the challenger (model version {challenger_version}): evaluate it "
                         f"with --champion first")
    eval_id = newest[0]["eval_id"]
    same = (models.where(F.col("eval_id") == eval_id)
            .select("eval_id", "system", "model_version", "macro_f1", "ndcg_10").toPandas())
    ch = same[same["model_version"] == challenger_version].iloc[0].to_dict()
    if champ is None:
        return Evidence(eval_id, ch, None)
    theirs = same[same["model_version"] == champ.version]
    if theirs.empty:
        raise InputError(f"evaluation {eval_id} did not score the champion ({champ.path}, version {champ.version}):"
                         f" evaluate with --champion so both are compared on the same pairs")
    return Evidence(eval_id, ch, theirs.iloc[0].to_dict())


def decide(ev: Evidence, p: PromoteParams, same_model: bool) -> tuple[bool, str]:
    """Promote or keep, and why in words."""
    if ev.champion is None:
        return True, "no champion yet: the first evaluated challenger becomes the champion"
    if same_model:
        return False, "the challenger is the champion already (same content hash)"
    gain_f1 = ev.challenger["macro_f1"] - ev.champion["macro_f1"]
    gain_ndcg = (ev.challenger["ndcg_10"] or 0.0) - (ev.champion["ndcg_10"] or 0.0)
    said = (f"macro-F1 {ev.challenger['macro_f1']:.4f} vs {ev.champion['macro_f1']:.4f} (gain {gain_f1:+.4f}, needs "
            f"{p.min_gain_macro_f1:+.4f}); NDCG@10 {ev.challenger['ndcg_10']:.4f} vs {ev.champion['ndcg_10']:.4f} "
            f"(gain {gain_ndcg:+.4f}, needs {p.min_gain_ndcg_10:+.4f}) in {ev.eval_id}")
    won = gain_f1 >= p.min_gain_macro_f1 and gain_ndcg >= p.min_gain_ndcg_10
    return won, ("promoted: " if won else "kept the champion: ") + said


def decision_row(run_id: str, registry: str, promoted: bool, reason: str, path: str, version: str,
                 champ: Champion | None, ev: Evidence | None = None, p: PromoteParams | None = None,
                 mlflow_version: str | None = None, root: str | None = None) -> dict:
    """One ``model_promotions`` row (model folders inside the warehouse ``root`` recorded relative to it)."""
    rel = (lambda x: stored_path(root, x)) if root else (lambda x: x)  # noqa: E731
    return dict(decided_at=dt.datetime.now(dt.timezone.utc), run_id=run_id, registry=registry, promoted=promoted,
                reason=reason, challenger_path=rel(path), challenger_version=version,
                champion_path=rel(champ.path) if champ else None, champion_version=champ.version if champ else None,
                eval_id=ev.eval_id if ev else None,
                challenger_macro_f1=ev.challenger["macro_f1"] if ev else None,
                champion_macro_f1=ev.champion["macro_f1"] if ev and ev.champion else None,
                challenger_ndcg_10=ev.challenger["ndcg_10"] if ev else None,
                champion_ndcg_10=ev.champion["ndcg_10"] if ev and ev.champion else None,
                min_gain_macro_f1=p.min_gain_macro_f1 if p else None,
                min_gain_ndcg_10=p.min_gain_ndcg_10 if p else None, mlflow_version=mlflow_version)


def champion_txn(registry: str) -> str:
    """The app id whose version counts the registry's promotions (the compare-and-swap's expected value)."""
    return f"taosr1/champion/{registry}"


def read_champion(store: TableStore, registry: str) -> tuple[Champion | None, int]:
    """The champion and the promotion count it belongs to (the count first: a promotion landing in between makes
    this run's swap fail, never succeed on a stale read)."""
    seq = store.txn_version("model_promotions", champion_txn(registry)) or 0
    return champion(store.root, registry), seq


@contextlib.contextmanager
def champion_lock(root: str, registry: str, timeout_s: float = 120.0) -> Iterator[None]:
    """The registry's promotions one at a time in a local warehouse: an exclusively created lock file naming its
    driver (a provably dead driver's lock is taken over). Object-store warehouses rely on the app transaction."""
    from taosr1.io.liveness import driver_gone, driver_id

    local = None if "://" in root and not root.startswith("file://") else root.removeprefix("file://")
    if local is None:
        yield
        return
    folder = Path(local) / "_locks"
    folder.mkdir(parents=True, exist_ok=True)
    lock = folder / f"champion-{registry}.lock"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            with os.fdopen(fd, "w") as f:
                f.write(driver_id())
            break
        except FileExistsError:
            try:
                owner = lock.read_text()
            except FileNotFoundError:
                continue
            if driver_gone(owner):
                lock.unlink(missing_ok=True)
                continue
            if time.monotonic() > deadline:
                raise InputError(f"another promotion of {registry} holds {lock} ({owner}) for over {timeout_s:g} s")
            time.sleep(0.05)
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def swap_champion(store: TableStore, row: dict, seq: int) -> WriteResult:
    """Commit a promotion row only if no other promotion of its registry committed since ``seq`` was read
    (``skipped`` in the result: another one did, nothing was written)."""
    df = store.spark.createDataFrame([row], contracts.load("model_promotions").schema)
    app = champion_txn(row["registry"])
    with champion_lock(store.root, row["registry"]):
        if (store.txn_version("model_promotions", app) or 0) != seq:
            return WriteResult("model_promotions", store.version("model_promotions") or 0, 0, 0, {}, skipped=True)
        return store.write("model_promotions", df, txn=Txn(app, seq + 1))


def crown(store: TableStore, path: str, reason: str, run_id: str, registry: str = REGISTRY) -> Champion:
    """Make ``path`` the champion without a contest (the demo's first scorer, an operator's explicit choice)."""
    from taosr1.model.reference import ModelRef
    from taosr1.tracking import register_champion, set_champion_alias

    version = ModelRef.resolve(path).version
    champ, seq = read_champion(store, registry)
    mv = register_champion(store.root, registry, path, version, run_id, alias=False)
    row = decision_row(run_id, registry, True, reason, str(Path(path).resolve()), version, champ, mlflow_version=mv,
                       root=store.root)
    if swap_champion(store, row, seq).skipped:
        raise InputError(f"another promotion of {registry} committed while crowning {path}: the champion is now "
                         f"{champion(store.root, registry).path}; crown again if this model should replace it")
    set_champion_alias(store.root, registry, mv)
    return Champion(path=resolved_path(store.root, row["challenger_path"]), version=version,
                    decided_at=str(row["decided_at"]), run_id=run_id,
                    reason=reason)


class PromoteModel(Stage[PromoteParams]):
    """Challenger against champion on the same evaluation → one ``model_promotions`` row (and the MLflow alias)."""

    name = "promote_model"
    Params = PromoteParams
    reads = ("eval_metrics", "model_promotions")
    writes = ("model_promotions",)
    tracked = True

    def run(self, ctx: Context, p: PromoteParams) -> None:
        from taosr1.model.reference import ModelRef
        from taosr1.tracking import reconcile_champion_alias, register_champion, set_champion_alias

        path = str(Path(p.challenger).resolve())
        version = ModelRef.resolve(path).version
        champ, seq = read_champion(ctx.store, p.registry)
        # the table is the truth: an alias left behind (tracking was off, or the warehouse moved) follows it first
        ctx.report.info["alias"] = reconcile_champion_alias(ctx.store.root, p.registry, champ and champ.path,
                                                            champ and champ.version, ctx.run_id)
        ev = latest_evidence(ctx.store, version, champ)
        promoted, reason = decide(ev, p, same_model=champ is not None and champ.version == version)
        schema = contracts.load("model_promotions").schema
        if promoted:
            mv = register_champion(ctx.store.root, p.registry, path, version, ctx.run_id, alias=False)
            w = swap_champion(ctx.store, decision_row(ctx.run_id, p.registry, True, reason, path, version, champ,
                                                      ev, p, mv, root=ctx.store.root), seq)
            if w.skipped:  # lost the swap: record the refusal, publish nothing
                now = champion(ctx.store.root, p.registry)
                promoted = False
                reason = (f"refused: another promotion (champion {now.version if now else None}) committed while "
                          f"this run decided against {champ.version if champ else 'no champion'}; evaluate "
                          f"against the new champion")
                ctx.write("model_promotions", ctx.spark.createDataFrame(
                    [decision_row(ctx.run_id, p.registry, False, reason, path, version, champ, ev, p,
                                  root=ctx.store.root)], schema))
            else:
                ctx.report.versions["model_promotions"] = w.version
                set_champion_alias(ctx.store.root, p.registry, mv)
        else:
            ctx.write("model_promotions", ctx.spark.createDataFrame(
                [decision_row(ctx.run_id, p.registry, False, reason, path, version, champ, ev, p,
                              root=ctx.store.root)], schema))
        c = ctx.report.counts
        c.rows_in = c.kept = 1
        ctx.report.info.update(promoted=promoted, reason=reason, eval_id=ev.eval_id)
        log_event(log, "promote.decided", promoted=promoted, challenger=version,
                  champion=champ.version if champ else None, eval_id=ev.eval_id)
