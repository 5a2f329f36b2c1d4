#!/usr/bin/env bash
# The whole check: format, lint, types, tests. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff format --check" && ruff format --check .
echo "== ruff check" && ruff check .
echo "== mypy" && mypy
echo "== pytest"
# pytest exits 5 when it collects no test: that is a failure here, like any other non-zero exit.
pytest -q "$@"
