#!/usr/bin/env bash
# Builds the HTML docs into docs/_build/html, executing every tutorial; warnings are errors.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
rm -rf docs/api/_autosummary docs/generated
exec "$PY" -m sphinx -E -W --keep-going -b html docs docs/_build/html "$@"
