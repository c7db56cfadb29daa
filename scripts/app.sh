#!/usr/bin/env bash
# Install (idempotent) and start the ResNet Explorer app on http://localhost:8501.
# Another port: PORT=8600 bash scripts/app.sh. Further arguments go to `streamlit run`
# (e.g. PORT=8600 bash scripts/app.sh --server.address 0.0.0.0).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run app/streamlit_app.py --server.port "${PORT:-8501}" "$@"
