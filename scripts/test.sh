#!/usr/bin/env bash
# Install (idempotent), lint, and run the whole test suite: library, app (AppTest) and browser (Chromium) tests.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/structure -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh dev
.venv/bin/ruff check .
exec .venv/bin/python -m pytest "$@"
