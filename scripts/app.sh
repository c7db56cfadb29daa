#!/usr/bin/env bash
# Install (idempotent) and start the ResNet Explorer app on http://localhost:8501 (PORT to change it).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run app/streamlit_app.py --server.port "${PORT:-8501}" "$@"
