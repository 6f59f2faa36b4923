#!/usr/bin/env bash
# The paper's Fashion-MNIST experiment (4.2) with its four activations; extra arguments go to
# `python -m train fashion_mnist` (see --help).
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
cd "$ROOT"
# This command asks for the data explicitly (the library never installs anything by itself):
# as root with apt, Debian's dataset-fashion-mnist when it is not found. Skipped when the
# arguments say where the data is or choose another dataset.
case " $* " in
  *" --data-dir"* | *" --dataset"*) ;;
  *)
    if [ "$(id -u)" = 0 ]; then
      "$PY" -m cpaf_jax.experiments.fetch fashion_mnist --install
    fi
    ;;
esac
exec "$PY" -m train fashion_mnist "$@"
