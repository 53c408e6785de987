# Sourced by scripts/demo and scripts/test: cd to the repository root and make
# sure .venv exists with the package installed (editable, extras test + demo).
# The install is redone only when pyproject.toml changed since the last one.
# Choose the interpreter with AI_FIELDS_PYTHON=python3.12, the venv with AI_FIELDS_VENV,
# and pin Django with AI_FIELDS_DJANGO='django>=6.1,<6.2' (installed after the package;
# a changed pin reinstalls).

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

VENV="${AI_FIELDS_VENV:-$ROOT/.venv}"
VENV_PY="$VENV/bin/python"
STAMP="$VENV/.django-ai-fields-install"
DJANGO_PIN="${AI_FIELDS_DJANGO:-}"

if [ ! -x "$VENV_PY" ]; then
    echo "Creating virtualenv $VENV"
    "${AI_FIELDS_PYTHON:-python3}" -m venv "$VENV"
fi

wanted="$("$VENV_PY" -c 'import hashlib, sys
print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest(), sys.version.split()[0])')${DJANGO_PIN:+ $DJANGO_PIN}"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing django-ai-fields[test,demo] into $VENV (first run: a minute or so)"
    log="$VENV/pip-install.log"
    : >"$log"
    # pip's output goes to a log (it may print harmless warnings); shown only on failure.
    pip_install() {
        if ! "$VENV_PY" -m pip install -q --disable-pip-version-check "$@" >>"$log" 2>&1; then
            grep -v "^WARNING: Location .* is ignored" "$log" | tail -n 40 >&2
            echo "pip install failed; full log: $log" >&2
            exit 1
        fi
    }
    pip_install -e '.[test,demo]'
    if [ -n "$DJANGO_PIN" ]; then
        echo "Pinning $DJANGO_PIN"
        pip_install "$DJANGO_PIN"
    fi
    echo "$wanted" >"$STAMP"
fi
