"""The one job shape: params validated, the run record opened before any input is read, counts checked."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from pydantic import ValidationError

import taosr1
from taosr1.errors import CountMismatch
from taosr1.job import Context, Counts, Params, Stage, run_stage
from taosr1.stages import STAGES, TRAINING_LOOP, cli_args, fill


class _Toy(Stage):
    """A stage written the way the guide says: params, declared tables, run."""

    name = "toy"

    class Params(Params):
        n: int
        lose: int = 0

    reads = ()
    writes = ("quarantine",)

    def run(self, ctx: Context, p) -> None:
        ctx.report.counts = Counts(rows_in=p.n, kept=p.n - p.lose)


def test_counts_that_do_not_add_up_fail_the_run_and_are_on_record(spark, store):
    rep = run_stage(_Toy(), store, _Toy.Params(n=5))
    assert rep.counts.as_dict() == {"rows_in": 5, "kept": 5, "quarantined": 0}
    with pytest.raises(CountMismatch, match="in 5 != kept 4"):
        run_stage(_Toy(), store, _Toy.Params(n=5, lose=1))
    runs = {r.status: r for r in store.read("job_runs").where("job = 'toy'").collect()}
    assert set(runs) == {"succeeded", "failed"} and "CountMismatch" in runs["failed"].error
    with pytest.raises(ValidationError):
        _Toy.Params(n=5, typo=1)  # unknown fields are errors


def _helper_reading(store, table: str) -> int:
    return store.read(table).count()  # a read several layers below a stage, as real helpers do


class _Nosy(Stage):
    """Reads a table through a helper: refused unless the stage declares it (``reads``/``writes``)."""

    name = "nosy"

    class Params(Params):
        table: str

    reads = ()
    writes = ()

    def run(self, ctx: Context, p) -> None:
        ctx.report.counts = Counts(rows_in=0)
        _helper_reading(ctx.store, p.table)


def test_a_stage_reading_an_undeclared_table_is_refused(spark, store):
    run_stage(_Toy(), store, _Toy.Params(n=1))
    with pytest.raises(RuntimeError, match=r"stage nosy reads 'search_log' but declares reads/writes \(\)"):
        run_stage(_Nosy(), store, _Nosy.Params(table="search_log"))
    run_stage(_Nosy(), store, _Nosy.Params(table="job_runs"))  # the run record: every stage may read it
    assert store.read("job_runs").where("job = 'nosy' AND status = 'failed'").count() == 1


def test_every_registered_stage_has_the_shape():
    for spec in STAGES.values():
        stage = spec.load()
        assert stage.name == spec.job and issubclass(stage.Params, Params)
        assert isinstance(stage.reads, tuple) and isinstance(stage.writes, tuple)
        assert type(stage).__doc__


def test_the_loop_is_wired_in_the_paper_order():
    order = [(s.id, s.job) for s in TRAINING_LOOP]
    assert [j for _, j in order] == ["build_sft_corpus", "train_readout", "train_sft", "train_sft",
                                     "sample_pass_at_n", "build_dpo_pairs", "train_dpo", "sample_pass_at_n",
                                     "label_difficulty", "train_grpo", "evaluate", "promote_model"]
    assert order[3][0] == "sft_think_first"  # the paper's ablation, trained on the same corpus from the same start
    v = {"source": "world", "corpus": "c", "run": "r", "base": "B", "models": "M", "readout_model": "M/lpft-c",
         "sft_model": "M/sft-c",
         "sft_tf_model": "M/sft-tf-c", "dpo_model": "M/dpo-c", "grpo_model": "M/grpo-c", "from_candidates": "",
         "prompt": "compact", "eval_corpus": "c", "eval_source": "", "eval_train_source": ""}
    steps = {s.id: fill(s.wiring, v) for s in TRAINING_LOOP}
    assert _stage("build_sft_corpus").Params(**steps["corpus"]).from_candidates is None  # "" = not given
    assert steps["passn_sft"]["model"] == "M/sft-c" and steps["passn_dpo"]["model"] == "M/dpo-c"
    assert steps["grpo"]["base"] == "M/dpo-c" and steps["grpo"]["data"] == steps["difficulty"]["run_id"] == "r-dpo"
    # the label is read out first (LP-FT), then both SFT variants start from that model
    assert steps["readout"]["base"] == "B" and steps["readout"]["readout_out"] == "M/readout-c"
    assert steps["sft"]["base"] == steps["sft_think_first"]["base"] == "M/lpft-c"
    assert steps["sft_think_first"]["order"] == "think_first"
    assert steps["corpus"]["prompt"] == steps["difficulty"]["prompt"] == "compact"  # the base model's variant
    ev = _stage("evaluate").Params(**steps["evaluate"])
    assert ev.corpus_id == "c" and ev.source is None and set(ev.models) == {
        "base", "readout", "lpft", "sft_think_first", "sft", "dpo", "grpo"}
    assert ev.models["readout"] == "M/readout-c" and ev.models["lpft"] == "M/lpft-c"
    assert steps["promote"]["challenger"] == "M/grpo-c"  # the loop's last model challenges the champion
    assert cli_args({"models": {"a": "x"}, "balanced_only": True, "n": 3, "run_id": None}) == \
        ["--models", "a=x", "--balanced-only", "--n", "3"]
    for step in TRAINING_LOOP:  # every wired name is a param of its stage
        assert set(step.wiring) <= set(STAGES[step.job].load().Params.model_fields), step.id


def _stage(job: str):
    return STAGES[job].load()


def test_no_import_circles():
    """Every module imports on its own, and no module imports one that imports it back."""
    import ast
    from pathlib import Path

    root = Path(taosr1.__file__).parent
    names = {m.name for m in pkgutil.walk_packages([str(root)], "taosr1.")}
    edges: dict[str, set[str]] = {}
    for name in names:
        importlib.import_module(name)
        path = root.joinpath(*name.split(".")[1:])
        path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("taosr1"):
                deps |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names}
        edges[name] = {d for d in deps if d in names and d != name}

    def reaches(a: str, b: str, seen: set[str]) -> bool:
        if a == b:
            return True
        seen.add(a)
        return any(reaches(n, b, seen) for n in edges.get(a, ()) if n not in seen)

    circles = sorted({tuple(sorted((a, b))) for a in edges for b in edges[a] if reaches(b, a, set())
                      and not b.startswith(a + ".") and not a.startswith(b + ".")})
    assert circles == []
    # layers point one way: engines never reach up into the stages that use them (shared knowledge lives below both)
    upward = sorted((a, b) for a in edges for b in edges[a]
                    if a.startswith("taosr1.engines") and b.startswith("taosr1.corpora"))
    assert upward == []
