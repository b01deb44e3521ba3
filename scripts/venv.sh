# Sourced by run.sh and test.sh: make .venv hold exactly what a requirements file asks for.
# Usage: ensure_venv REQUIREMENTS_FILE
ensure_venv() {
    local requirements="$1"
    local python="${PYTHON:-python3}"
    if [ ! -x .venv/bin/python ]; then
        echo "creating .venv with $($python --version)"
        "$python" -m venv .venv
    fi
    # reinstall only when the requirements changed since the last successful install
    local stamp=".venv/.installed-$(basename "$requirements")"
    local digest
    digest="$(cat requirements*.txt | sha256sum | cut -d' ' -f1)"
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
        echo "installing $requirements into .venv (first run: about 2 minutes)"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
        .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$requirements"
        echo "$digest" > "$stamp"
    fi
}
