#!/usr/bin/env bash
# Lint, the whole test suite, then the docs (tutorials executed, warnings as errors). Needs the
# real Fashion-MNIST (Debian's dataset-fashion-mnist); installs it when running as root with apt
# and it is missing.
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
if [ ! -d /usr/share/datasets/fashion-mnist ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  apt-get update -q && apt-get install -y -q dataset-fashion-mnist
fi
"$PY" -m ruff check cpaf_jax train benchmarks tests
"$PY" -m ruff format --check cpaf_jax train benchmarks tests
"$PY" -m pytest -q -n 2 --dist loadfile "$@"
bash "$ROOT/scripts/docs.sh" -q
