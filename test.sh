#!/usr/bin/env bash
# Run every test. First use creates .venv, installs requirements-dev.txt, and installs Debian's
# chromium for the browser tests. Tests that need CROHME run when MATHOCR_DATA points at it.
# Extra arguments go to pytest (./test.sh -m "not browser" skips the browser tests).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
    echo "installing Debian's chromium for the browser tests"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/python -m pytest "$@"
