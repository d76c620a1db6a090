"""MLflow tracking and registry, optional: every tracked stage is an MLflow run; the champion is a registered
model version with the alias ``champion``.

Embedded default: a SQLite store and an artifact folder under the warehouse (``<warehouse>/mlflow``), so
``mlflow ui --backend-store-uri sqlite:///<warehouse>/mlflow/mlflow.db`` shows the runs; ``MLFLOW_TRACKING_URI``
points it at a team's server instead. Off when MLflow is not installed (the ``track`` extra), when
``TAOSR1_TRACKING=off``, or for a remote warehouse without ``MLFLOW_TRACKING_URI``. Tracking never fails a job:
a tracking error is logged and the job goes on.

A tracking server that does not answer costs a job seconds, not minutes: one quick probe per process and URI
(``TAOSR1_TRACKING_PROBE_S``, default 3 s), then tracking is off for the run with one warning; a read-only SQLite
store likewise. MLflow's own HTTP retries are bounded too, for a server that dies mid-run. The champion in
``gold/model_promotions`` stays the source of truth; the registry alias is reconciled from it on the next tracked run.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from taosr1.obs import get_logger, log_event

log = get_logger(__name__)

EXPERIMENT = "taosr1"
MAX_ARTIFACT_MB = float(os.environ.get("TAOSR1_MLFLOW_MAX_ARTIFACT_MB", "64"))
PROBE_S = float(os.environ.get("TAOSR1_TRACKING_PROBE_S", "3"))
_PROBED: dict[str, str | None] = {}  # tracking URI -> why it is unusable (None: usable), probed once per process


def _local_root(root: str) -> Path | None:
    if root.startswith("file://"):
        return Path(root[len("file://"):])
    if root.startswith("file:"):
        return Path(root[len("file:"):])
    return None if "://" in root else Path(root)


def tracking_uri(root: str) -> str | None:
    """Where runs go: ``$MLFLOW_TRACKING_URI``, else SQLite under a local warehouse, else nowhere (None)."""
    if os.environ.get("MLFLOW_TRACKING_URI"):
        return os.environ["MLFLOW_TRACKING_URI"]
    local = _local_root(root)
    return f"sqlite:///{local.resolve()}/mlflow/mlflow.db" if local is not None else None


def unusable(uri: str) -> str | None:
    """Why the tracking store at ``uri`` cannot take runs now (None when it can): an HTTP server that does not
    answer within ``PROBE_S`` (any HTTP answer, 401 included, counts as alive), or a SQLite store that cannot be
    written. Probed once per process; the first failure logs one warning."""
    if uri in _PROBED:
        return _PROBED[uri]
    reason = None
    if uri.startswith(("http://", "https://")):
        try:
            urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_S).close()
        except urllib.error.HTTPError:
            pass  # it answered
        except (urllib.error.URLError, OSError, ValueError) as e:
            reason = f"no tracking server answers at {uri} within {PROBE_S:g} s ({getattr(e, 'reason', e)})"
    elif uri.startswith("sqlite:///"):
        db = Path(uri[len("sqlite:///"):])
        folder = next((d for d in (db.parent, *db.parent.parents) if d.exists()), None)
        if (db.exists() and not os.access(db, os.W_OK)) or (folder is not None and not os.access(folder, os.W_OK)):
            reason = f"the tracking store {db} is read-only"
    _PROBED[uri] = reason
    if reason:
        log_event(log, "tracking.off", logging.WARNING, reason=reason,
                  note="this run is not tracked; the champion table stays the source of truth")
    return reason


def enabled(root: str) -> bool:
    if (os.environ.get("TAOSR1_TRACKING", "on").lower() in ("off", "0", "false")
            or importlib.util.find_spec("mlflow") is None):
        return False
    uri = tracking_uri(root)
    return uri is not None and unusable(uri) is None


def _client(root: str):
    """The MLflow module and client pointed at this warehouse's store, with the experiment created."""
    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # a server that dies mid-run: a few quick retries, not MLflow's default 7 with back-off (minutes)
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    uri = tracking_uri(root)
    local = _local_root(root)
    if local is not None and uri and uri.startswith("sqlite:///"):
        (local / "mlflow").mkdir(parents=True, exist_ok=True)
    before = os.environ.get("MLFLOW_TRACKING_URI")
    mlflow.set_tracking_uri(uri)  # also exports MLFLOW_TRACKING_URI, which would pin every later warehouse here
    mlflow.set_registry_uri(uri)
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before
    client = mlflow.MlflowClient()
    artifacts = (local / "mlflow" / "artifacts").resolve().as_uri() if local is not None else None
    exp = client.get_experiment_by_name(EXPERIMENT)
    if exp is not None and artifacts and uri and uri.startswith("sqlite:///") and exp.artifact_location != artifacts:
        # a copied or moved warehouse: its store still names the original's artifact folder. Keep the old runs
        # under a name that says where they came from; new runs write into this warehouse only.
        with contextlib.suppress(Exception):
            client.rename_experiment(exp.experiment_id, f"{EXPERIMENT} (before a move; artifacts at "
                                                        f"{exp.artifact_location})"[:250])
            log_event(log, "tracking.rehomed", old=exp.artifact_location, new=artifacts)
            exp = None
    if exp is None:
        with contextlib.suppress(Exception):  # a concurrent creator won
            client.create_experiment(EXPERIMENT, artifact_location=artifacts)
    mlflow.set_experiment(EXPERIMENT)  # TRL's MLflow callback logs to the run active here
    return mlflow, client


class Tracker:
    """The active stage run: metrics, tables and files go to it; every call is best effort."""

    def __init__(self, mlflow: Any) -> None:
        self.mlflow = mlflow

    def _safe(self, what: str, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - tracking never fails a job
            log_event(log, "tracking.error", what=what, error=f"{type(e).__name__}: {e}"[:300])

    def metrics(self, values: dict[str, Any], prefix: str = "") -> None:
        clean = {f"{prefix}{k}".replace(":", "_"): float(v) for k, v in values.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        if clean:
            self._safe("metrics", self.mlflow.log_metrics, clean)

    def metrics_at(self, values: dict[str, Any], step: int, prefix: str = "") -> None:
        """One point of a metric series (a learning curve: ``step`` = examples seen)."""
        clean = {f"{prefix}{k}".replace(":", "_"): float(v) for k, v in values.items()
                 if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v}
        if clean:
            self._safe("metrics", self.mlflow.log_metrics, clean, step=int(step))

    def text(self, text: str, name: str) -> None:
        self._safe("text", self.mlflow.log_text, text, name)

    def file(self, path: str | Path, folder: str | None = None) -> None:
        if Path(path).is_file():
            self._safe("file", self.mlflow.log_artifact, str(path), folder)

    def model_folder(self, path: str | Path, folder: str = "model") -> None:
        """The model folder's files up to ``TAOSR1_MLFLOW_MAX_ARTIFACT_MB`` each (card, config, tokenizer, weights
        of small models); ``location.json`` names the folder and the larger files left out."""
        p = Path(path)
        skipped = []
        for f in sorted(p.iterdir()) if p.is_dir() else []:
            if f.is_file() and f.stat().st_size <= MAX_ARTIFACT_MB * 2**20:
                self.file(f, folder)
            elif f.is_file():
                skipped.append({"file": f.name, "bytes": f.stat().st_size})
        self.text(json.dumps({"path": str(p.resolve()), "skipped": skipped}, indent=2), f"{folder}/location.json")
        self._safe("tag", self.mlflow.set_tag, "model_path", str(p.resolve()))


@contextlib.contextmanager
def stage_run(root: str, stage: str, run_id: str, params: dict[str, Any]) -> Iterator[Tracker | None]:
    """An MLflow run around one stage run (None when tracking is off); failed stages end as FAILED runs."""
    if not enabled(root):
        yield None
        return
    try:
        mlflow, _ = _client(root)
        mlflow.start_run(run_name=run_id, tags={"taosr1.stage": stage, "taosr1.run_id": run_id})
    except Exception as e:  # noqa: BLE001 - tracking never fails a job
        log_event(log, "tracking.error", what="start", error=f"{type(e).__name__}: {e}"[:300])
        yield None
        return
    tracker = Tracker(mlflow)
    flat = {f"taosr1.{k}": (json.dumps(v, default=str) if isinstance(v, (dict, list)) else v)
            for k, v in params.items() if v is not None}
    tracker._safe("params", mlflow.log_params, {k: str(v)[:500] for k, v in flat.items()})
    status = "FAILED"
    try:
        yield tracker
        status = "FINISHED"
    finally:
        with contextlib.suppress(Exception):
            mlflow.end_run(status=status)


def register_champion(root: str, registry: str, path: str, version: str, run_id: str,
                      alias: bool = True) -> str | None:
    """A registered model version for ``path`` (source: the folder), carrying the alias ``champion`` unless
    ``alias=False`` (a promotion moves it with :func:`set_champion_alias` once its decision has committed); returns
    its version number, or None when tracking is off or fails."""
    if not enabled(root):
        return None
    try:
        mlflow, client = _client(root)
        from mlflow.exceptions import MlflowException

        try:
            client.create_registered_model(registry, description="taosr1 relevance judge: the champion scores "
                                           "the catalog nightly")
        except MlflowException:
            pass  # exists
        mv = client.create_model_version(registry, source=Path(path).resolve().as_uri(),
                                         tags={"content_version": version, "taosr1.run_id": run_id})
        if alias:
            client.set_registered_model_alias(registry, "champion", mv.version)
            log_event(log, "tracking.champion", registry=registry, version=mv.version, model=version)
        return str(mv.version)
    except Exception as e:  # noqa: BLE001 - tracking never fails a job
        log_event(log, "tracking.error", what="register", error=f"{type(e).__name__}: {e}"[:300])
        return None


def set_champion_alias(root: str, registry: str, mlflow_version: str | None) -> None:
    """Point the registry's ``champion`` alias at a registered version (nothing when tracking is off)."""
    if mlflow_version is None or not enabled(root):
        return
    try:
        _, client = _client(root)
        client.set_registered_model_alias(registry, "champion", mlflow_version)
        log_event(log, "tracking.champion", registry=registry, version=mlflow_version)
    except Exception as e:  # noqa: BLE001 - tracking never fails a job
        log_event(log, "tracking.error", what="alias", error=f"{type(e).__name__}: {e}"[:300])


def reconcile_champion_alias(root: str, registry: str, path: str | None, version: str | None, run_id: str) -> str:
    """Make the registry's ``champion`` alias name the champion ``gold/model_promotions`` names (the source of
    truth): a promotion made while tracking was off, or a warehouse copied or moved since (the alias's source then
    lies outside this warehouse), is registered now. Returns what it did: ``off``, ``none``, ``in_step``,
    ``moved`` or ``error``."""
    if path is None or version is None:
        return "none"
    if not enabled(root):
        return "off"
    try:
        _, client = _client(root)
        source = Path(path).resolve().as_uri()
        try:
            mv = client.get_model_version_by_alias(registry, "champion")
            if mv.tags.get("content_version") == version and mv.source == source:
                return "in_step"
        except Exception:  # noqa: BLE001 - no registered model or no alias yet
            mv = None
        got = register_champion(root, registry, path, version, run_id, alias=True)
        log_event(log, "tracking.alias_reconciled", registry=registry, model=version, version=got,
                  was=None if mv is None else f"{mv.version}:{mv.tags.get('content_version')}")
        return "moved" if got else "error"
    except Exception as e:  # noqa: BLE001 - tracking never fails a job
        log_event(log, "tracking.error", what="reconcile", error=f"{type(e).__name__}: {e}"[:300])
        return "error"
