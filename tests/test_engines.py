"""Engines on the built-in model: hf, vLLM (CPU build) and an OpenAI-compatible server (vLLM's own) agree."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import typing

import numpy as np
import pytest

from taosr1.engines import create_engine, engine_config
from taosr1.inference import PROB_COLS, run_bisected, with_label_probs
from taosr1.prompts import build_messages, render_prompt
from tests.helpers import jvm_only

# The agreement we state: renormalised label probabilities of two backends differ by at most this (fp32, CPU).
TOLERANCE = 1e-4


def _prompts(engine, rows):
    return [render_prompt(engine.tokenizer, build_messages(r["query"], r)) for r in rows]


@pytest.fixture(scope="module")
def hf(builtin_model):
    return create_engine(engine_config(model_path=builtin_model, batch_size=16))


def test_hf_prefix_cache_matches_plain_forward(hf, builtin_model, pair_rows):
    plain = create_engine(engine_config(model_path=builtin_model, batch_size=16, prefix_cache=False))
    prompts = _prompts(hf, pair_rows[:40])
    a, b = hf.label_probs(prompts), plain.label_probs(prompts)
    np.testing.assert_allclose(a, b, atol=TOLERANCE)
    np.testing.assert_allclose(a.sum(axis=1), 1.0, atol=1e-9)
    # batch composition does not change a row's probabilities
    np.testing.assert_allclose(hf.label_probs(prompts[:3]), a[:3], atol=TOLERANCE)


def test_query_shared_prefix_matches_plain_and_runs_fewer_tokens(builtin_model, pair_rows):
    """Pairs of one query share the instruction *and* the query: the query runs once per group, and every row's
    probabilities are those of a plain forward pass, whatever it was batched with."""
    by_query: dict[str, list[dict]] = {}
    for r in pair_rows:
        by_query.setdefault(r["query"], []).append(r)
    rows = [r for q in sorted(by_query, key=lambda q: -len(by_query[q]))[:6] for r in by_query[q][:5]]
    rows.append(pair_rows[-1])  # a lone row in the batch
    grouped = create_engine(engine_config(model_path=builtin_model, batch_size=64))
    plain = create_engine(engine_config(model_path=builtin_model, batch_size=64, prefix_cache=False))
    prompts = _prompts(grouped, rows)
    a, b = grouped.label_probs(prompts), plain.label_probs(prompts)
    np.testing.assert_allclose(a, b, atol=TOLERANCE)
    assert grouped.stats["tokens_useful"] < 0.75 * plain.stats["tokens_useful"], (grouped.stats, plain.stats)
    np.testing.assert_allclose(grouped.label_probs(prompts[3:4]), a[3:4], atol=TOLERANCE)  # alone: same


def test_hf_sample_is_seeded_and_has_logprobs(hf, pair_rows):
    prompts = _prompts(hf, pair_rows[:3])
    s1 = hf.sample(prompts, n=3, max_new_tokens=12, seed=5)
    s2 = hf.sample(prompts, n=3, max_new_tokens=12, seed=5)
    s3 = hf.sample(prompts, n=3, max_new_tokens=12, seed=6)
    assert [[x.text for x in r] for r in s1] == [[x.text for x in r] for r in s2]
    assert [[x.text for x in r] for r in s1] != [[x.text for x in r] for r in s3]
    assert len(s1) == 3 and all(len(r) == 3 for r in s1)
    for row in s1:
        for smp in row:
            assert 0 < len(smp.token_logprobs) <= 12 and all(lp <= 0 for lp in smp.token_logprobs)


def test_run_bisected_isolates_the_poisonous_item():
    calls = []

    def fn(items):
        calls.append(len(items))
        if 13 in items:
            raise ValueError("poison 13")
        return [i * 2 for i in items]

    out = run_bisected(fn, list(range(20)))
    assert [o for o, _ in out] == [i * 2 if i != 13 else None for i in range(20)]
    assert out[13][1] == "ValueError: poison 13" and sum(e is not None for _, e in out) == 1


@jvm_only
def test_spark_glue_keeps_rows_and_quarantines_a_bad_row(spark, builtin_model, pair_rows):
    import pandas as pd

    rows = pd.DataFrame(pair_rows[:300])[["query_id", "query", "product_id", "title", "category", "brand", "price",
                                          "description"]]
    rows.loc[7, "title"] = " ".join(f"w{i}" for i in range(400))  # far past max_model_len once tokenised
    df = spark.createDataFrame(rows).repartition(3)
    cfg = engine_config(model_path=builtin_model, batch_size=32, max_model_len=400)
    out = with_label_probs(df, cfg, expected_rows=300).toPandas()
    assert len(out) == 300 and set(out["product_id"]) == set(rows["product_id"])
    errs = out[out["error"].notna()]
    assert list(errs["query_id"] + errs["product_id"]) == [rows.loc[7, "query_id"] + rows.loc[7, "product_id"]]
    assert "max_model_len" in errs["error"].iloc[0]
    good = out[out["error"].isna()]
    np.testing.assert_allclose(good[list(PROB_COLS)].sum(axis=1), 1.0, atol=1e-6)
    # the same rows scored directly agree with the Spark run
    direct = create_engine(cfg)
    sub = good.head(20)
    want = direct.label_probs(_prompts(direct, sub.to_dict("records")))
    np.testing.assert_allclose(sub[list(PROB_COLS)].to_numpy(), want, atol=TOLERANCE)


@jvm_only
def test_engine_stages_load_one_engine_per_executor(spark, builtin_model, pair_rows):
    """However the input is partitioned, an engine stage runs one task per executor (local: one), whose engine
    uses all the executor's cores, with a query's pairs next to each other."""
    import pandas as pd

    from taosr1.inference import engine_layout

    assert engine_layout(spark) == (1, spark.sparkContext.defaultParallelism)
    rows = pd.DataFrame(pair_rows[:60])[["query_id", "query", "product_id", "title"]]
    out = with_label_probs(spark.createDataFrame(rows).repartition(4), engine_config(model_path=builtin_model))
    assert out.rdd.getNumPartitions() == 1
    got = out.toPandas()
    assert len(got) == 60 and got["error"].isna().all()
    assert got["query"].tolist() == sorted(got["query"])


def test_ignore_eos_writes_exactly_max_new_tokens(hf, pair_rows):
    out = hf.sample(_prompts(hf, pair_rows[:2]), n=2, max_new_tokens=40, temperature=1.0, seed=1, ignore_eos=True)
    assert all(len(s.token_logprobs) == 40 for row in out for s in row)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def vllm_server(builtin_model, tmp_path_factory):
    """vLLM's own OpenAI-compatible server (CPU build) on loopback."""
    pytest.importorskip("vllm")
    port = _free_port()
    log = tmp_path_factory.mktemp("vllm") / "server.log"
    env = dict(os.environ, VLLM_CPU_KVCACHE_SPACE="1", VLLM_CPU_NUM_OF_RESERVED_CPU="0")
    proc = subprocess.Popen([sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", builtin_model,
                             "--served-model-name", "builtin", "--host", "127.0.0.1", "--port", str(port),
                             "--dtype", "float32", "--enforce-eager", "--max-model-len", "1024",
                             "--gpu-memory-utilization", "0.1"], env=env, stdout=open(log, "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)  # its engine core dies with it
    import urllib.request

    deadline = time.time() + 240
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("vLLM server exited:\n" + log.read_text()[-3000:])
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2)
            break
        except OSError:
            time.sleep(1)
    else:
        os.killpg(proc.pid, 9)
        raise TimeoutError("vLLM server did not come up:\n" + log.read_text()[-3000:])
    yield f"http://127.0.0.1:{port}/v1"
    import signal

    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)  # the server and its EngineCore child: an orphan would spin a core
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.mark.slow
@jvm_only
def test_all_three_backends_agree_inside_spark(spark, builtin_model, pair_rows, vllm_server):
    """hf, vllm and openai on the same model, each inside a local Spark job over 240 rows."""
    import pandas as pd

    rows = pd.DataFrame(pair_rows[:240])[["query_id", "query", "product_id", "title", "category", "brand", "price",
                                          "description"]]
    df = spark.createDataFrame(rows).repartition(2)
    results = {}
    for backend, extra in (("hf", {}), ("vllm", {"gpu_memory_utilization": 0.1}),
                           ("openai", {"base_url": vllm_server, "served_model": "builtin", "concurrency": 4})):
        cfg = engine_config(backend=backend, model_path=builtin_model, batch_size=32, **extra)
        out = with_label_probs(df, cfg, expected_rows=240).toPandas().sort_values(["query_id", "product_id"])
        assert out["error"].isna().all(), out["error"].dropna().head()
        assert len(out) == 240
        results[backend] = out[list(PROB_COLS)].to_numpy()
    np.testing.assert_allclose(results["vllm"], results["hf"], atol=TOLERANCE)
    np.testing.assert_allclose(results["openai"], results["hf"], atol=TOLERANCE)


@pytest.mark.slow
def test_openai_and_vllm_sampling(builtin_model, pair_rows, vllm_server):
    client = create_engine(engine_config(backend="openai", model_path=builtin_model, base_url=vllm_server,
                                        served_model="builtin", batch_size=4, concurrency=2))
    prompts = _prompts(client, pair_rows[:6])
    out = client.sample(prompts, n=3, max_new_tokens=8, temperature=1.0)
    assert len(out) == 6 and all(len(r) == 3 for r in out)
    assert all(len(s.token_logprobs) > 0 and all(lp <= 0 for lp in s.token_logprobs) for r in out for s in r)
    greedy = client.sample(prompts[:2], n=1, max_new_tokens=8, temperature=0.0)
    assert [r[0].text for r in greedy] == [r[0].text for r in client.sample(prompts[:2], n=1, max_new_tokens=8,
                                                                            temperature=0.0)]


@pytest.mark.slow
def test_vllm_sampling_is_reproducible_for_a_fixed_seed(builtin_model, pair_rows):
    """On the CPU build the seed lives on the engine (a per-request seed kills the CPU worker): two fresh engines
    with the same seed sample the same completions; on GPU the per-request seed does the same within one engine."""
    import gc

    pytest.importorskip("vllm")
    outs = []
    for _ in range(2):
        eng = create_engine(engine_config(backend="vllm", model_path=builtin_model, seed=7,
                                         gpu_memory_utilization=0.1))
        prompts = _prompts(eng, pair_rows[:4])
        outs.append([[s.text for s in row] for row in eng.sample(prompts, n=3, max_new_tokens=10, seed=7)])
        eng.close()
        del eng
        gc.collect()
    assert outs[0] == outs[1]
    assert len({t for row in outs[0] for t in row}) > 1  # it did sample, not decode greedily


def test_engine_configs_are_one_union_with_backend_policy():
    from pydantic import ValidationError

    from taosr1.engines import BACKENDS, HFConfig, RulesConfig, VLLMConfig, config_from_json

    assert set(BACKENDS) == {"hf", "vllm", "openai", "rules"}
    assert isinstance(engine_config(model_path="m"), HFConfig)
    assert engine_config(backend="vllm", model_path="m").gpu_memory_utilization == 0.15
    assert engine_config(backend="vllm", model_path="m", device="cuda").gpu_memory_utilization == 0.9
    cfg = engine_config(backend="rules")
    assert isinstance(cfg, RulesConfig) and config_from_json(cfg.model_dump_json()) == cfg
    assert isinstance(config_from_json(VLLMConfig(model_path="m").model_dump_json()), VLLMConfig)
    with pytest.raises(ValidationError, match="base_url"):
        engine_config(backend="openai", model_path="m")  # an OpenAI server needs its URL
    with pytest.raises(ValidationError, match="gpu_memory_utilization"):
        engine_config(backend="hf", model_path="m", gpu_memory_utilization=0.5)  # not an hf option
    from taosr1.job import EngineParams

    assert EngineParams(engine="vllm", model="m", label_readout="classify").engine_config("/wh").label_readout == \
        "classify"  # the score job's --label-readout reaches vLLM's config
    with pytest.raises(ValidationError, match="label_readout"):
        engine_config(backend="hf", model_path="m", label_readout="classify")


def test_every_backend_option_is_an_option_of_every_engine_job():
    """EngineParams is generated from the backend configs: each option (bounds included) reaches its backend's config
    and only that one; a new config class brings its options to every engine job's flags."""
    from pydantic import ValidationError

    from taosr1.engines.config import CONFIGS, NOT_JOB_OPTIONS, backend_of
    from taosr1.job import EngineParams
    from taosr1.stages import STAGES

    for cls in CONFIGS:
        assert backend_of(cls) in typing.get_args(EngineParams.model_fields["engine"].annotation)
        assert set(cls.model_fields) - set(NOT_JOB_OPTIONS) <= set(EngineParams.model_fields)
    p = EngineParams(engine="openai", model="m", base_url="http://h/v1", timeout_s=5, dtype="float32")
    cfg = p.engine_config("/wh")
    assert cfg.timeout_s == 5 and cfg.base_url == "http://h/v1" and not hasattr(cfg, "dtype")
    hf = EngineParams(model="m", share_query_prefix=False).engine_config("/wh")
    assert hf.share_query_prefix is False and hf.batch_size == 32 and hf.dtype == "auto"  # the jobs' defaults
    with pytest.raises(ValidationError, match="concurrency"):
        EngineParams(model="m", concurrency=0)  # the config's own bound
    # Airflow renders an unset option as "" (`--base-url={{ params.base_url }}`): not given, never a bound error
    unset = EngineParams(engine="hf", model="", base_url="", max_model_len="", dtype="")
    assert unset.model is None and unset.base_url is None and unset.max_model_len is None and unset.dtype == "auto"
    for spec in STAGES.values():
        if issubclass(spec.load().Params, EngineParams):
            assert set(EngineParams.model_fields) <= set(spec.load().Params.model_fields)


def test_rules_engine_is_the_knowledge_teacher(pair_rows):
    from taosr1.knowledge.teacher import teach

    eng = create_engine(engine_config(backend="rules"))
    prompts = _prompts(eng, pair_rows[:40])
    probs = eng.label_probs(prompts)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    want = [teach(r["query"], r)[0] for r in pair_rows[:40]]
    assert [4 - int(np.argmax(p)) for p in probs] == want
    a = eng.sample(prompts, n=6, temperature=1.0, seed=3)
    assert a == eng.sample(prompts, n=6, temperature=1.0, seed=3)  # seeded
    labels = {s.text.splitlines()[0] for row in a for s in row}
    assert len(labels) > 1 and all(len(row) == 6 for row in a)
    greedy = eng.sample(prompts[:5], n=3, temperature=0.0)
    assert all(len({s.text for s in row}) == 1 for row in greedy)


def test_batched_sampling_gives_each_pair_the_samples_it_gets_alone(hf, pair_rows):
    """pass@N sends a whole Arrow batch in one engine call, and a pair's samples do not depend on its neighbours."""
    import pandas as pd

    from taosr1.inference import row_seed, sample_frame

    rows = pair_rows[:6]
    calls = []

    class Counting:
        def __init__(self, inner):
            self.inner, self.tokenizer = inner, inner.tokenizer

        def sample(self, prompts, **kw):
            calls.append(len(prompts))
            return self.inner.sample(prompts, **kw)

    make = lambda r: render_prompt(hf.tokenizer, build_messages(r["query"], r))  # noqa: E731
    pdf = pd.DataFrame([{**r, "query_id": f"q{i}", "product_id": f"p{i}"} for i, r in enumerate(rows)])
    kw = dict(n=3, temperature=1.0, top_p=1.0, max_new_tokens=10, seed=4)
    batched = sample_frame(Counting(hf), make, pdf, **kw)
    assert calls == [6] and len(batched) == 18 and batched["error"].isna().all()
    for i, rec in enumerate(pdf.to_dict("records")):
        alone = hf.sample([make(rec)], n=3, temperature=1.0, max_new_tokens=10, seeds=[row_seed(4, rec)])[0]
        got = batched[batched["query_id"] == f"q{i}"].sort_values("sample_idx")["text"].tolist()
        assert got == [s.text for s in alone]
    assert len(set(batched["text"])) > 3  # sampled, not greedy


def test_dtype_follows_the_cpu(recwarn, builtin_model):
    from taosr1.model.precision import resolve_dtype

    bf16_cpu, avx2_cpu = frozenset({"avx512f", "avx512_bf16"}), frozenset({"avx2", "fma"})
    assert resolve_dtype("auto", "cpu", bf16_cpu) == "bfloat16"
    assert resolve_dtype("auto", "cpu", avx2_cpu) == "float32"
    assert resolve_dtype("auto", "cuda:0", avx2_cpu) == "bfloat16"
    assert resolve_dtype("float32", "cpu", bf16_cpu) == "float32" and not recwarn.list
    with pytest.warns(RuntimeWarning, match="without bf16 instructions"):
        assert resolve_dtype("bfloat16", "cpu", avx2_cpu) == "bfloat16"
    engine = create_engine(engine_config(model_path=builtin_model, dtype="auto"))
    from taosr1.model.precision import cpu_has_bf16

    assert engine.dtype == ("bfloat16" if cpu_has_bf16() else "float32")


def test_a_dead_vllm_engine_is_fatal_not_retried():
    from taosr1.inference import is_fatal

    EngineDeadError = type("EngineDeadError", (RuntimeError,), {})  # vllm.v1.engine.exceptions' name
    assert is_fatal(EngineDeadError("engine core died")) and not is_fatal(ValueError("bad row"))
