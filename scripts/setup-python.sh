#!/usr/bin/env bash
# Create/refresh the Python venv (.venv) used by the runtime package in assets/
# and its pytest suite. Idempotent: skips the install when a stamp holding the
# sha256 of the requirement files (and the interpreter version) matches.
#
#   bash scripts/setup-python.sh            # then: .venv/bin/pytest assets/tests -q
#   PYTHON=python3.12 bash scripts/setup-python.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
ASSETS="$ROOT/assets"
REQ="$ASSETS/requirements"
PY="${PYTHON:-python3.11}"
STAMP="$VENV/.requirements.sha256"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_INPUT=1 PYTHONDONTWRITEBYTECODE=1

die() { echo "setup-python: $*" >&2; exit 1; }

command -v "$PY" >/dev/null 2>&1 || die "'$PY' not found (set PYTHON=... to a Python 3.11-3.13)"

# (Re)create the venv if missing or broken (e.g. its interpreter was removed).
if ! "$VENV/bin/python" -c 'import sys' >/dev/null 2>&1; then
  rm -rf "$VENV"
  "$PY" -m venv "$VENV" || die "could not create $VENV with $PY"
fi
"$VENV/bin/python" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 14)))' \
  || die "$VENV uses $("$VENV/bin/python" -V 2>&1); need 3.11-3.13 (rm -rf $VENV)"

want="$(
  {
    "$VENV/bin/python" -V 2>&1
    cat "$REQ/runtime.txt" "$REQ/dev.txt" "$REQ/constraints.txt" "$ASSETS/pyproject.toml"
  } | sha256sum | cut -d' ' -f1
)"
if [[ -f "$STAMP" && "$(cat "$STAMP")" == "$want" ]]; then
  exit 0
fi

rm -f "$STAMP"
"$VENV/bin/python" -m pip install -q -r "$REQ/dev.txt" -c "$REQ/constraints.txt"
# Editable install of hermes_aws; setuptools comes pinned from dev.txt.
"$VENV/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$ASSETS"
"$VENV/bin/python" -m pip check >/dev/null || { "$VENV/bin/python" -m pip check >&2; die "pip check failed"; }
echo "$want" >"$STAMP"
echo "setup-python: $VENV ready ($("$VENV/bin/python" -V 2>&1))"
