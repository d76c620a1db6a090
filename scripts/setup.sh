#!/usr/bin/env bash
# Create .venv and install taosr1 with its test tools. Idempotent: a second run only checks.
# Needs Python 3.11 and Java 17 (Spark 4). Extras: TAOSR1_EXTRAS="dev,train" etc.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
EXTRAS=${TAOSR1_EXTRAS:-dev}
stamp=.venv/.taosr1-installed
want=$( (cat pyproject.toml constraints.txt 2>/dev/null; echo "$EXTRAS") | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
command -v java >/dev/null 2>&1 || { echo "setup: Java 17+ is required by Spark (apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
cons=()
[ -f constraints.txt ] && cons=(-c constraints.txt)
.venv/bin/python -m pip install -q "${cons[@]}" -e ".[${EXTRAS}]"
echo "$want" > "$stamp"
echo "setup: .venv ready (extras: $EXTRAS)"
