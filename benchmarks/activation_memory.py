"""Compiled memory of CPAF's forward+backward per implementation, against ReLU.

Memory, unlike time, does not move with the machine's load: ``memory_analysis()`` of the
compiled gradient of ``sum(act(y) ** 2)`` at the first FashionNet layer's shape,
``y: [128, 26, 26, 16]`` float32, per-element parameters ``[26, 26, 16, 2]``.

    python -m benchmarks.activation_memory
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

import cpaf_jax
from cpaf_jax import compile_options

SHAPE = (128, 26, 26, 16)


def temp_bytes(fn, *args) -> int:
    """Temporary bytes XLA allocates for ``fn(*args)``, compiled as the package compiles."""
    return compile_options.jit(fn).lower(*args).compile().memory_analysis().temp_size_in_bytes


def rows() -> list[dict]:
    """One row per (base, implementation), plus ReLU; sizes in MiB."""
    y = jnp.zeros(SHAPE)
    a = jnp.ones(SHAPE[1:] + (2,))
    b = jnp.ones(SHAPE[1:] + (2,))
    out = [
        {
            "activation": "relu",
            "implementation": "-",
            "temp_mib": temp_bytes(jax.grad(lambda y: jnp.sum(jax.nn.relu(y) ** 2)), y) / 2**20,
        }
    ]
    for base in ("relu", "sigmoid"):
        for impl in cpaf_jax.IMPLEMENTATIONS:

            def loss(y, a, b, base=base, impl=impl):
                return jnp.sum(cpaf_jax.cpaf(y, a, b, base, implementation=impl) ** 2)

            grad = jax.grad(loss, (0, 1, 2))
            out.append(
                {
                    "activation": f"cpaf_{base}",
                    "implementation": impl,
                    "temp_mib": temp_bytes(grad, y, a, b) / 2**20,
                }
            )
    return out


def main() -> None:
    print(f"Temporary memory of forward+backward at {list(SHAPE)}, k = 2, per element")
    print("(the activation gradient itself, 5.45 MiB, is an output, not counted)\n")
    print("| activation | implementation | temp MiB |\n|---|---|---|")
    for r in rows():
        print(f"| {r['activation']} | {r['implementation']} | {r['temp_mib']:.2f} |")


if __name__ == "__main__":
    main()
