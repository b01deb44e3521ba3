#!/usr/bin/env bash
# Start the mathocr app with the shipped models on http://localhost:8501.
# First use creates .venv and installs requirements.txt. Extra arguments go to `streamlit run`.
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv requirements.txt
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/python -m streamlit run app.py \
    --server.port "${PORT:-8501}" --server.headless true --browser.gatherUsageStats false "$@"
