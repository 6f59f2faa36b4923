"""Section 1: the activation alone, forward and forward+backward, at FashionNet's shapes.

Every activation is timed against ReLU on the same input in the same run. Parametric ones are
differentiated with respect to the input and their parameters (as in training), fixed ones
with respect to the input only. Inputs: float32 ``[128, *F]`` channels last.

The peers APL, PAU and Swish appear in their default sharing with default initial values, by
``cpaf_jax``'s function (on CPU its backward is the one-pass kernel) and, as ``(autodiff)``,
by JAX's autodiff of the same forward, which is what the kernel replaced.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from benchmarks.timing import interleaved
from cpaf_jax import compile_options
from cpaf_jax.activations import apl, pau, swish
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.activations.prelu import prelu
from cpaf_jax.ops.functional import cpaf
from cpaf_jax.ops.sharing import param_shape

# FashionNet's activation inputs (batch 128): conv1, conv2, conv3, dense.
FASHION_SHAPES = ((128, 26, 26, 16), (128, 11, 11, 32), (128, 3, 3, 4), (128, 30))

#: name -> (function, the same by autodiff, sharing, initial parameters for the sharing's shape).
PEERS = {
    "apl S=2 element": (
        apl.apl,
        functools.partial(apl.apl, implementation="autodiff"),
        "element",
        lambda p: tuple(jnp.broadcast_to(c, (*p, 2)) for c in apl.apl_default_init(2)),
    ),
    "pau (5,4) shared": (
        pau.pau,
        functools.partial(pau.pau, implementation="autodiff"),
        "shared",
        lambda p: tuple(jnp.broadcast_to(c, (*p, len(c))) for c in pau.pau_default_init()),
    ),
    "swish channel": (
        swish.swish,
        functools.partial(swish.swish, implementation="autodiff"),
        "channel",
        lambda p: (jnp.full(p, swish.SWISH_BETA_INIT),),
    ),
}

FIXED = {
    "relu": jax.nn.relu,
    "elu": jax.nn.elu,
    "sigmoid": jax.nn.sigmoid,
    "tanh": jnp.tanh,
}


def _variants(mode: str) -> list[dict]:
    """Each variant: name, kind (fixed/prelu/cpaf), base, k, sharing, implementation.

    CPAF appears at k = 2 in each sharing; section 1b (``layer_table``) has k = 1..8 and the
    other implementations.
    """
    out = [{"name": n, "kind": "fixed"} for n in FIXED]
    out.append({"name": "prelu", "kind": "prelu", "sharing": "element"})
    for name in PEERS:
        out.append({"name": name, "kind": "peer", "autodiff": False})
        if mode != "smoke":
            out.append({"name": f"{name} (autodiff)", "kind": "peer", "autodiff": True})
    sharings = ("element",) if mode == "smoke" else ("element", "channel", "shared")
    for base in ("relu", "sigmoid"):
        for sharing in sharings:
            out.append(
                {
                    "name": f"cpaf_{base} k=2 {sharing}",
                    "kind": "cpaf",
                    "base": base,
                    "k": 2,
                    "sharing": sharing,
                    "implementation": None,
                }
            )
    return out


def _build(v: dict, shape: tuple[int, ...]):
    """Returns (forward fn, fwd+bwd fn, params tuple) for a variant at ``shape``."""
    features = shape[1:]
    if v["kind"] == "fixed":
        f = FIXED[v["name"]]

        def fwd(y):
            return f(y)

        params = ()
    elif v["kind"] == "peer":
        fn, forward, sharing, init = PEERS[v["name"].removesuffix(" (autodiff)")]
        fwd = forward if v["autodiff"] else fn
        params = tuple(jnp.asarray(c, jnp.float32) for c in init(param_shape(features, sharing)))
    elif v["kind"] == "prelu":
        alpha = jnp.full(param_shape(features, v["sharing"]), 0.25, jnp.float32)

        def fwd(y, alpha):
            return prelu(y, alpha)

        params = (alpha,)
    else:
        from cpaf_jax.ops.bases import resolve_base

        base = resolve_base(v["base"])
        a0, b0 = default_terms(base, v["k"])
        p = param_shape(features, v["sharing"]) + (v["k"],)
        a = jnp.broadcast_to(jnp.asarray(a0, jnp.float32), p)
        b = jnp.broadcast_to(jnp.asarray(b0, jnp.float32), p)

        def fwd(y, a, b):
            return cpaf(y, a, b, base, implementation=v["implementation"])

        params = (a, b)

    def loss(y, g, *ps):
        return jnp.sum(fwd(y, *ps) * g)

    argnums = tuple(range(len(params) + 2))
    grad = jax.grad(loss, argnums=(0,) + argnums[2:])
    return compile_options.jit(fwd), compile_options.jit(grad), params


def run(mode: str) -> dict:
    """Times every variant at each shape.

    Returns:
      ``{"rows": [{shape, name, forward_ms, fwd_bwd_ms, forward_ratio, fwd_bwd_ratio}]}``;
      ratios are to ReLU at the same shape.
    """
    shapes = FASHION_SHAPES[:1] if mode == "smoke" else FASHION_SHAPES
    repeats, iters = {"smoke": (1, 2), "quick": (3, 5), "full": (5, 10)}[mode]
    variants = _variants(mode)
    rows = []
    for shape in shapes:
        ky, kg = jax.random.split(jax.random.key(0))
        y = jax.random.normal(ky, shape, jnp.float32)
        g = jax.random.normal(kg, shape, jnp.float32)
        fns = {}
        for v in variants:
            fwd, grad, params = _build(v, shape)
            fns[("fwd", v["name"])] = functools.partial(fwd, y, *params)
            fns[("bwd", v["name"])] = functools.partial(grad, y, g, *params)
        t = interleaved(fns, repeats=repeats, iters=iters)
        for v in variants:
            n = v["name"]
            rows.append(
                {
                    "shape": list(shape),
                    "name": n,
                    "forward_ms": t[("fwd", n)] * 1e3,
                    "fwd_bwd_ms": t[("bwd", n)] * 1e3,
                    "forward_ratio": t[("fwd", n)] / t[("fwd", "relu")],
                    "fwd_bwd_ratio": t[("bwd", n)] / t[("bwd", "relu")],
                }
            )
    return {"rows": rows}
