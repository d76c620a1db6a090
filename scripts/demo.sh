#!/usr/bin/env bash
# The main job on the embedded default: set up, then sample world -> simulated logs -> ingest -> Delta tables.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/taosr1 demo "$@"
