# Sourced by the other scripts: creates .venv with the package when missing or out of date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
if [ ! -x "$PY" ]; then
  echo "creating $VENV" >&2
  python3 -m venv "$VENV"
  "$PY" -m pip install -q --upgrade pip
fi
STAMP="$VENV/.cpaf-jax-installed"
if [ ! -f "$STAMP" ] || [ "$ROOT/pyproject.toml" -nt "$STAMP" ]; then
  echo "installing cpaf-jax and its dependencies into $VENV" >&2
  "$PY" -m pip install -q -e "$ROOT[dev,plots,docs]"
  touch "$STAMP"
fi
