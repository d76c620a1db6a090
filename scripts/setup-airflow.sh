#!/usr/bin/env bash
# Airflow 3 lives in its own venv (.venv-airflow): its pins and vLLM's cannot share one environment. The DAGs
# only submit jobs (spark-submit of the project's .venv), so nothing of taosr1 is imported there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null 2>&1 || PY=python3
stamp=.venv-airflow/.installed
want="apache-airflow==3.3.2 apache-airflow-providers-apache-spark==6.3.4 deltalake==1.6.6 pytest>=8"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
log=.setup-airflow.log
printf 'setup: %-58s' "Airflow 3.3 in its own venv (.venv-airflow)"
t=$SECONDS
{
  [ -x .venv-airflow/bin/python ] || "$PY" -m venv .venv-airflow
  .venv-airflow/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  # shellcheck disable=SC2086
  .venv-airflow/bin/python -m pip install -q --disable-pip-version-check $want
} >"$log" 2>&1 || { echo " FAILED"; tail -n 30 "$log" >&2; echo "setup: installer output in $log" >&2; exit 1; }
echo " $((SECONDS - t)) s"
echo "$want" > "$stamp"
