# Sourced by scripts/demo and scripts/test: cd to the repository root and make
# sure .venv exists with the package installed (editable, extras test + demo).
# The install is redone only when pyproject.toml changed since the last one.
# Choose the interpreter with AI_FIELDS_PYTHON=python3.12, the venv with AI_FIELDS_VENV.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${AI_FIELDS_VENV:-$ROOT/.venv}"
VENV_PY="$VENV/bin/python"
STAMP="$VENV/.django-ai-fields-install"

if [ ! -x "$VENV_PY" ]; then
    echo "Creating virtualenv $VENV"
    "${AI_FIELDS_PYTHON:-python3}" -m venv "$VENV"
fi

wanted="$("$VENV_PY" -c 'import hashlib, sys
print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), sys.version.split()[0])')"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing django-ai-fields[test,demo] into $VENV (first run: a minute or so)"
    log="$VENV/pip-install.log"
    # pip's output goes to a log (it may print harmless warnings); shown only on failure.
    if ! "$VENV_PY" -m pip install -q --disable-pip-version-check -e '.[test,demo]' >"$log" 2>&1; then
        grep -v "^WARNING: Location .* is ignored" "$log" | tail -n 40 >&2
        echo "pip install failed; full log: $log" >&2
        exit 1
    fi
    echo "$wanted" >"$STAMP"
fi
