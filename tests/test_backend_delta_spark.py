"""Run the shared table suites against Spark-native Delta (``format("delta")``, ``replaceWhere``, ``MERGE INTO``,
``versionAsOf``) on a pysail Spark Connect server, in its own process (a process holds one kind of session)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.helpers import REPO, jvm_only

SUITES = ["tests/test_tables.py", "tests/test_contracts.py"]


@pytest.mark.slow
@jvm_only
def test_shared_suites_pass_on_spark_native_delta():
    env = dict(os.environ, TAOSR1_TEST_BACKEND="delta-spark")
    env.pop("SPARK_REMOTE", None)
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", *SUITES],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    tail = proc.stdout[-3000:]
    assert proc.returncode == 0, tail + proc.stderr[-2000:]
    # Only the test of delta-rs' own commit protocol (marked jvm_only) may be skipped there.
    skipped = [line for line in proc.stdout.splitlines() if line.startswith("SKIPPED")]
    assert len(skipped) == 1 and skipped[0].startswith("SKIPPED [1] tests/test_tables.py:") and \
        skipped[0].endswith(jvm_only.kwargs["reason"]), skipped
    assert " passed" in tail
