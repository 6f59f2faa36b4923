"""Section 1b: the CPAF layer alone for k = 1..8 in every base and sharing, with its floor.

At the first FashionNet layer's shape, ``y: [128, 26, 26, 16]`` float32, each variant is the
jitted gradient of ``sum(cpaf(y, a, b) * g)`` with respect to ``y``, ``a`` and ``b`` (the
forward pass is dead code there, as the backward pass of a layer is in training), timed
interleaved with ``jax.nn.relu``'s gradient. Rows:

* ``default``: ``cpaf_jax.cpaf`` with its default implementation, per base, sharing and k;
  the ratio to ReLU and to k = 2 of the same base and sharing (median [range] over rounds).
* ``floor``: the pointwise work alone, the ``xla_vjp`` custom VJP differentiated with respect
  to ``y`` only, so that XLA drops the parameter sums: what a one-pass kernel would approach.
* at k = 2, ``xla_vjp`` (the same custom VJP with the pure-XLA backward), ``unrolled`` and
  ``naive`` (autodiff), as a ratio to the default in each round.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.timing import interleaved_samples, ratio_spread
from cpaf_jax import compile_options
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.ops.bases import resolve_base
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.sharing import param_shape

BASES = ("relu", "sigmoid", "tanh")
SHARINGS = ("element", "channel", "shared")
OTHER_IMPLEMENTATIONS = ("xla_vjp", "unrolled", "naive")


def _grad(base: str, k: int, sharing: str, shape, impl=None, wrt=(0, 2, 3)):
    """A zero-argument call of the compiled gradient, and its inputs."""
    a0, b0 = default_terms(resolve_base(base), k)
    p = param_shape(shape[1:], sharing) + (k,)
    a = jnp.broadcast_to(jnp.asarray(a0, jnp.float32), p)
    b = jnp.broadcast_to(jnp.asarray(b0, jnp.float32), p)

    def loss(y, g, a, b):
        return jnp.sum(cpaf(y, a, b, base, implementation=impl) * g)

    return compile_options.jit(jax.grad(loss, wrt)), a, b


def _plan(mode: str):
    if mode == "smoke":
        return (8, 26, 26, 16), (1, 2), ("relu", "sigmoid"), ("element", "channel")
    if mode == "quick":
        return (128, 26, 26, 16), (1, 2, 4, 8), BASES, SHARINGS
    return (128, 26, 26, 16), tuple(range(1, 9)), BASES, SHARINGS


def run(mode: str) -> dict:
    """Returns ``{"shape", "rows": [{base, sharing, k, variant, ms, ratio, ratio_lo, ratio_hi,
    to_k2, to_default}]}``: ``ratio`` to ReLU's gradient; ``to_k2`` the default's ratio to
    its own k = 2 (default rows); ``to_default`` another implementation's ratio to the default
    (median over rounds)."""
    shape, ks, bases, sharings = _plan(mode)
    # Nine rounds in full: the k = 8 / k = 2 goal is the worst of nine (base, sharing) medians,
    # so a median over few rounds lets one disturbed round decide it.
    repeats, iters = {"smoke": (1, 2), "quick": (3, 5), "full": (9, 10)}[mode]
    ky, kg = jax.random.split(jax.random.key(0))
    y = jax.random.normal(ky, shape, jnp.float32)
    g = jax.random.normal(kg, shape, jnp.float32)
    relu = compile_options.jit(jax.grad(lambda y, g: jnp.sum(jax.nn.relu(y) * g)))
    fns = {("relu", "", 0, "jax.nn.relu"): functools.partial(relu, y, g)}
    for base in bases:
        for k in ks:
            f, a, b = _grad(base, k, "element", shape, "xla_vjp", wrt=(0,))
            fns[(base, "element", k, "floor")] = functools.partial(f, y, g, a, b)
        for sharing in sharings:
            for k in ks:
                f, a, b = _grad(base, k, sharing, shape)
                fns[(base, sharing, k, "default")] = functools.partial(f, y, g, a, b)
            for impl in OTHER_IMPLEMENTATIONS:
                f, a, b = _grad(base, 2, sharing, shape, impl)
                fns[(base, sharing, 2, impl)] = functools.partial(f, y, g, a, b)
    samples = interleaved_samples(fns, repeats=repeats, iters=iters)
    to_relu = ratio_spread(samples, ("relu", "", 0, "jax.nn.relu"))
    rows = []
    for key, v in samples.items():
        base, sharing, k, variant = key
        row = {
            "base": base,
            "sharing": sharing,
            "k": k,
            "variant": variant,
            "ms": min(v) * 1e3,
            "ratio": to_relu[key]["median"],
            "ratio_lo": to_relu[key]["lo"],
            "ratio_hi": to_relu[key]["hi"],
        }
        if variant == "default" and (base, sharing, 2, "default") in samples:
            row["to_k2"] = ratio_spread(samples, (base, sharing, 2, "default"))[key]["median"]
        if variant in OTHER_IMPLEMENTATIONS:
            row["to_default"] = ratio_spread(samples, (base, sharing, k, "default"))[key]["median"]
        rows.append(row)
    return {"shape": list(shape), "rows": rows}
