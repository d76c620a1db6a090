"""Run a suite from ``quality/<suite>.json`` with great-expectations 1.x on Spark DataFrames.

A suite has named frames (the table itself and views derived from it, e.g. clicks vs impressions per session);
each frame gets a GX ``ExpectationSuite``, ``ValidationDefinition`` and ``Checkpoint`` in a file data context under
``<warehouse>/quality``, and Data Docs are rebuilt once per gate. Runtime values (the expected row count,
thresholds) come in as GX expectation parameters (``{"$PARAMETER": name}`` in the JSON). Jobs call
:func:`run_gate` *before* committing: a failing gate raises :class:`QualityGateFailed` and nothing is published.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from pyspark.sql import DataFrame

from taosr1.errors import Taosr1Error
from taosr1.obs import get_logger, log_event

log = get_logger(__name__)


class QualityGateFailed(Taosr1Error):
    """A gate failed: the message lists the failed expectations and where the report is."""

    def __init__(self, result: "GateResult") -> None:
        self.result = result
        lines = "\n".join(f"  - {f}" for f in result.failures[:20])
        super().__init__(f"quality gate '{result.suite}' failed; nothing was published.\n{lines}\n"
                         f"validation result: {result.result_path}\nData Docs: {result.docs_index}")


@dataclass
class GateResult:
    suite: str
    success: bool
    failures: list[str] = field(default_factory=list)
    result_path: Path | None = None
    docs_index: Path | None = None
    statistics: dict = field(default_factory=dict)


def _class_name(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def load_suite(name: str) -> dict:
    """The suite ``quality/<name>.json`` (packaged as ``taosr1/resources/quality``)."""
    from taosr1 import resources

    return json.loads(resources.read_text("quality", name))


def run_gate(suite: str, frames: dict[str, DataFrame], quality_root: str, run_name: str,
             params: dict | None = None, docs: bool = True) -> GateResult:
    """Validate every frame of ``suite``; write the results (JSON) and, when ``docs`` or the gate failed, rebuild
    Data Docs (HTML) once; return the outcome."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    doc = load_suite(suite)
    values = {**doc.get("defaults", {}), **(params or {})}
    missing = set(doc["frames"]) - set(frames)
    if missing:
        raise ValueError(f"gate '{suite}' needs frames {sorted(missing)}")
    root = Path(quality_root)
    root.mkdir(parents=True, exist_ok=True)
    ctx = gx.get_context(mode="file", project_root_dir=str(root))
    source = ctx.data_sources.add_or_update_spark(name="taosr1")
    failures: list[str] = []
    stats: dict[str, dict] = {}
    results: dict[str, dict] = {}
    for frame, expectations in doc["frames"].items():
        asset = next((a for a in source.assets if a.name == f"{suite}.{frame}"), None) or \
            source.add_dataframe_asset(name=f"{suite}.{frame}")
        bd = next((b for b in asset.batch_definitions if b.name == "whole"), None) or \
            asset.add_batch_definition_whole_dataframe("whole")
        exps = [getattr(gxe, _class_name(e["type"]))(**e["kwargs"]) for e in expectations]
        gsuite = ctx.suites.add_or_update(gx.ExpectationSuite(name=f"{suite}.{frame}", expectations=exps))
        vd = ctx.validation_definitions.add_or_update(
            gx.ValidationDefinition(name=f"{suite}.{frame}", data=bd, suite=gsuite))
        cp = ctx.checkpoints.add_or_update(gx.Checkpoint(
            name=f"{suite}.{frame}", validation_definitions=[vd], result_format="SUMMARY", actions=[]))
        res = cp.run(batch_parameters={"dataframe": frames[frame]}, expectation_parameters=values,
                     run_id=gx.RunIdentifier(run_name=re.sub(r"[^A-Za-z0-9_.-]", "_", run_name)))
        for vr in res.run_results.values():
            stats[frame] = dict(vr.statistics)
            results[frame] = vr.to_json_dict()
            for r in vr.results:
                if not r.success:
                    cfg = r.expectation_config
                    col = cfg.kwargs.get("column") or cfg.kwargs.get("column_list") or cfg.kwargs.get("column_A") or ""
                    observed = {k: r.result.get(k) for k in ("observed_value", "unexpected_count", "unexpected_percent",
                                                             "partial_unexpected_list") if r.result.get(k) is not None}
                    failures.append(f"{frame}: {cfg.type} {col} {json.dumps(observed, default=str)[:300]}")
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S")
    out = root / "results" / suite / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', run_name)}-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"suite": suite, "run": run_name, "success": not failures, "failures": failures,
                               "parameters": values, "results": results}, indent=1, default=str))
    docs_index = build_docs(str(root)) if docs or failures else None  # once per gate, after every frame's result
    gate = GateResult(suite, not failures, failures, out, docs_index, stats)
    log_event(log, "quality.gate", suite=suite, run=run_name, success=gate.success, failures=len(failures),
              result=str(out))
    return gate


def require(gate: GateResult) -> GateResult:
    """Raise :class:`QualityGateFailed` unless the gate passed."""
    if not gate.success:
        raise QualityGateFailed(gate)
    return gate


def build_docs(quality_root: str) -> Path | None:
    """Rebuild the Data Docs site from every stored validation result (a multi-day run does this once, at its
    end); returns its index page."""
    import great_expectations as gx

    ctx = gx.get_context(mode="file", project_root_dir=str(quality_root))
    ctx.build_data_docs()
    index = Path(quality_root) / "gx" / "uncommitted" / "data_docs" / "local_site" / "index.html"
    if not index.exists():
        return None
    from taosr1.quality.offline_docs import localize

    localize(index.parent)
    return index
