#!/usr/bin/env bash
# The paper's Fashion-MNIST experiment (4.2) with its four activations; extra arguments go to
# `python -m train fashion_mnist` (see --help).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
exec "$PY" -m train fashion_mnist "$@"
