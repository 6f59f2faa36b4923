"""Section 1b: the CPAF layer alone for k = 1..8 in every base and sharing, with its floor.

At the first FashionNet layer's shape, ``y: [128, 26, 26, 16]`` float32, each variant is the
jitted gradient of ``sum(cpaf(y, a, b) * g)`` with respect to ``y``, ``a`` and ``b`` (the
forward's value is not used; on CPU the sigmoid and tanh bases' forward writes it together
with ``y`` all the same, which copies ``y`` here, where it is an input), timed interleaved with
``jax.nn.relu``'s gradient. Rows:

* ``default``: ``cpaf_jax.cpaf`` with its default implementation, per base, sharing and k;
  the ratio to ReLU and to k = 2 of the same base and sharing (median [range] over rounds).
* ``floor``: the pointwise work alone, the ``xla_vjp`` custom VJP differentiated with respect
  to ``y`` only, so that XLA drops the parameter sums: what a one-pass kernel would approach.
* at k = 2, ``xla_vjp`` (the same custom VJP with the pure-XLA backward), ``unrolled`` and
  ``naive`` (autodiff), as a ratio to the default in each round.
* at k = 2 for the ReLU base, whose default backward is XLA's (``kernel_form``), where the
  kernel is built, ``kernel``:
  the kernel's ReLU form called directly (``kernel_vjp.with_kernel_vjp``), as a ratio to the
  default: what the kernel would give where the cotangent is already written out.

Every program, ReLU's included, is compiled twice: with plain ``jax.jit`` (XLA's defaults, YNN
fusions on XLA:CPU) and with ``cpaf_jax.jit``; each row's ratios are to programs compiled the
same way.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.timing import interleaved_samples, ratio_spread
from cpaf_jax import compile_options
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.ops import cpu_kernel, kernel_vjp
from cpaf_jax.ops.bases import resolve_base
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.sharing import param_shape

BASES = ("relu", "sigmoid", "tanh")
SHARINGS = ("element", "channel", "shared")
OTHER_IMPLEMENTATIONS = ("xla_vjp", "unrolled", "naive")
#: How each program is compiled: ``"jax.jit"`` (XLA's defaults) and ``"cpaf_jax.jit"``.
JITS = {"jax.jit": jax.jit, "cpaf_jax.jit": compile_options.jit}


def _relu_kernel_cpaf():
    """CPAF with the ReLU base whose backward is the kernel's ReLU form on CPU."""
    spec = kernel_vjp.base_spec("relu")
    return kernel_vjp.with_kernel_vjp(
        functools.partial(cpaf, base="relu", implementation="unrolled"),
        functools.partial(kernel_vjp.terms_backward, spec),
    )


def _grad(base: str, k: int, sharing: str, shape, impl=None, wrt=(0, 2, 3), jit="cpaf_jax.jit"):
    """A zero-argument call of the compiled gradient, and its inputs (``impl="kernel"``: the
    ReLU base through the kernel's form)."""
    a0, b0 = default_terms(resolve_base(base), k)
    p = param_shape(shape[1:], sharing) + (k,)
    a = jnp.broadcast_to(jnp.asarray(a0, jnp.float32), p)
    b = jnp.broadcast_to(jnp.asarray(b0, jnp.float32), p)
    act = (
        _relu_kernel_cpaf()
        if impl == "kernel"
        else functools.partial(cpaf, base=base, implementation=impl)
    )

    def loss(y, g, a, b):
        return jnp.sum(act(y, a, b) * g)

    return JITS[jit](jax.grad(loss, wrt)), a, b


def _plan(mode: str):
    if mode == "smoke":
        return (8, 26, 26, 16), (1, 2), ("relu", "sigmoid"), ("element", "channel")
    if mode == "quick":
        return (128, 26, 26, 16), (1, 2, 4, 8), BASES, SHARINGS
    return (128, 26, 26, 16), tuple(range(1, 9)), BASES, SHARINGS


def _variants(jit: str, shape, ks, bases, sharings, y, g) -> dict:
    """``(jit, base, sharing, k, variant) -> zero-argument call`` of one compilation's rows."""
    relu = JITS[jit](jax.grad(lambda y, g: jnp.sum(jax.nn.relu(y) * g)))
    # The kernel row needs the kernel: built, on CPU.
    kernel = cpu_kernel.available() and jax.default_backend() == "cpu"
    fns = {(jit, "relu", "", 0, "jax.nn.relu"): functools.partial(relu, y, g)}
    for base in bases:
        for k in ks:
            f, a, b = _grad(base, k, "element", shape, "xla_vjp", wrt=(0,), jit=jit)
            fns[(jit, base, "element", k, "floor")] = functools.partial(f, y, g, a, b)
        for sharing in sharings:
            for k in ks:
                f, a, b = _grad(base, k, sharing, shape, jit=jit)
                fns[(jit, base, sharing, k, "default")] = functools.partial(f, y, g, a, b)
            for impl in OTHER_IMPLEMENTATIONS + (("kernel",) if base == "relu" and kernel else ()):
                f, a, b = _grad(base, 2, sharing, shape, impl, jit=jit)
                fns[(jit, base, sharing, 2, impl)] = functools.partial(f, y, g, a, b)
    return fns


def run(mode: str) -> dict:
    """Returns ``{"shape", "rows": [{jit, base, sharing, k, variant, ms, ratio, ratio_lo,
    ratio_hi, to_k2, to_default}]}``: ``ratio`` to ReLU's gradient compiled the same way;
    ``to_k2`` the default's ratio to its own k = 2 (default rows); ``to_default`` another
    implementation's ratio to the default (median over rounds)."""
    shape, ks, bases, sharings = _plan(mode)
    # Nine rounds in full: the k = 8 / k = 2 goal is the worst of nine (base, sharing) medians,
    # so a median over few rounds lets one disturbed round decide it.
    repeats, iters = {"smoke": (1, 2), "quick": (3, 5), "full": (9, 10)}[mode]
    ky, kg = jax.random.split(jax.random.key(0))
    y = jax.random.normal(ky, shape, jnp.float32)
    g = jax.random.normal(kg, shape, jnp.float32)
    fns = {}
    for jit in JITS:
        fns.update(_variants(jit, shape, ks, bases, sharings, y, g))
    samples = interleaved_samples(fns, repeats=repeats, iters=iters)
    relu = {jit: ratio_spread(samples, (jit, "relu", "", 0, "jax.nn.relu")) for jit in JITS}
    rows = []
    for key, v in samples.items():
        jit, base, sharing, k, variant = key
        to_relu = relu[jit][key]
        row = {
            "jit": jit,
            "base": base,
            "sharing": sharing,
            "k": k,
            "variant": variant,
            "ms": min(v) * 1e3,
            "ratio": to_relu["median"],
            "ratio_lo": to_relu["lo"],
            "ratio_hi": to_relu["hi"],
        }
        if variant == "default" and (jit, base, sharing, 2, "default") in samples:
            row["to_k2"] = _ratio(samples, key, (jit, base, sharing, 2, "default"))
        if variant in OTHER_IMPLEMENTATIONS + ("kernel",):
            row["to_default"] = _ratio(samples, key, (jit, base, sharing, k, "default"))
        rows.append(row)
    return {"shape": list(shape), "rows": rows}


def _ratio(samples: dict, key, reference) -> float:
    """The median over rounds of ``key``'s time over ``reference``'s."""
    return ratio_spread({0: samples[key], 1: samples[reference]}, 1)[0]["median"]
