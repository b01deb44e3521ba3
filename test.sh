#!/usr/bin/env bash
# Run every test. First use creates .venv, installs requirements-dev.txt, and installs Debian's
# chromium (browser tests) and texlive + dvipng (typeset formulas). Tests that need CROHME run when MATHOCR_DATA points at it.
# Extra arguments go to pytest (./test.sh -m "not browser" skips the browser tests; the tests run in parallel,
# one worker per CPU as pyproject.toml says, and -n 0 runs them in one process).
set -euo pipefail
cd "$(dirname "$0")"
source scripts/venv.sh
ensure_venv requirements-dev.txt
# Debian packages: chromium for the browser tests, LaTeX and dvipng for rendering typeset formulas
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v latex >/dev/null 2>&1 || missing+=(texlive-latex-base texlive-latex-extra texlive-fonts-recommended cm-super-minimal)
command -v dvipng >/dev/null 2>&1 || missing+=(dvipng)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages (first run: a few minutes): ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-2}"
exec .venv/bin/python -m pytest "$@"
