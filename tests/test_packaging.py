"""The package carries its data: a job runs from the built wheel, outside the checkout (as with --py-files)."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile

import pytest

from tests.helpers import REPO, jvm_only


@pytest.mark.slow
@jvm_only
def test_a_job_runs_from_the_installed_wheel_outside_the_checkout(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(dist), str(REPO)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = dist.glob("taosr1-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for data in ("taosr1/resources/schemas/relevance_scores.json", "taosr1/resources/quality/search_log.json",
                 "taosr1/resources/analytics/tier_distribution_by_day.sql"):
        assert data in names, data
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), PYSPARK_PYTHON=sys.executable, TAOSR1_WAREHOUSE=str(work / "wh"))
    env.pop("SPARK_REMOTE", None)
    main = "import sys, taosr1, taosr1.cli; print('package at', taosr1.__file__); taosr1.cli.main()"
    # the built-in scorer: what is under test is the package's data and entry point, not the trained scorer (the
    # demo test runs that one)
    demo = subprocess.run([sys.executable, "-c", main, "demo", "--days", "1", "--scorer", "builtin"], cwd=work, env=env,
                          capture_output=True, text=True, timeout=600)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert f"package at {site}" in demo.stdout and "relevance scoring 2026-11-19" in demo.stdout
    q = subprocess.run([sys.executable, "-c", main, "query", "tier_distribution_by_day", "--engine", "duckdb"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert q.returncode == 0 and "2026-11-19" in q.stdout, q.stdout[-2000:] + q.stderr[-2000:]
