#!/usr/bin/env bash
# The whole check: format, lint, types, tests. CI runs exactly this (.ci/run).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh dev
# The kiosk's browser test drives Debian's headless Chromium. Install it where we may (root with
# apt, as in CI); elsewhere that one test skips and says why.
if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing chromium and chromium-driver (Debian) for the kiosk browser test"
    if ! { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y \
           --no-install-recommends chromium chromium-driver; } >/tmp/facetwo-apt.log 2>&1; then
      tail -n 20 /tmp/facetwo-apt.log >&2
      echo "check: could not install chromium; the kiosk browser test will skip" >&2
    fi
  fi
fi
export PATH="$PWD/.venv/bin:$PATH"
echo "== ruff format --check" && ruff format --check .
echo "== ruff check" && ruff check .
echo "== mypy" && mypy
echo "== pytest"
# pytest exits 5 when it collects no test: that is a failure here, like any other non-zero exit.
pytest -q "$@"
