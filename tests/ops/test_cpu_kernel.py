"""The one-pass CPU backward of ``cpaf`` (``cpaf_jax/ops/kernels/cpaf_cpu.cc``).

``cpaf``'s default implementation calls the kernel in its backward pass on CPU for the sigmoid
and tanh bases (the ReLU base's form is called directly); the ``xla_vjp`` implementation is the
same custom VJP with the pure-JAX backward. Both are compared
here on shapes that exercise the kernel's loops (column blocks of 256, rows taken 4 at a time
with a remainder, chunks over threads, regrouped rows), every base, sharing and k = 1..8;
``test_functional.py`` compares every implementation with a NumPy reference on small shapes.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax import cpaf
from cpaf_jax.ops import cpu_kernel, kernel_vjp

pytestmark = pytest.mark.skipif(
    not cpu_kernel.available(), reason="no C++ compiler: the XLA backward is used (tested)"
)

# y shapes: per element wide rows (1,000+ columns, 7 rows: a remainder after 4-row steps),
# many narrow rows (per channel, regrouped), a dense layer, one odd-sized vector.
SHAPES = ((7, 9, 11, 13), (64, 6, 6, 8), (33, 30), (5, 3))
SHARING = {
    "element": lambda shape, k: (*shape[1:], k),
    "channel": lambda shape, k: (shape[-1], k),
    "shared": lambda shape, k: (k,),
}


def _inputs(rng, shape, p_shape):
    y = rng.normal(scale=2.0, size=shape).astype(np.float32)
    g = rng.normal(size=shape).astype(np.float32)
    a = rng.normal(size=p_shape).astype(np.float32)
    b = rng.normal(size=p_shape).astype(np.float32)
    return y, g, a, b


def _grads(impl, base):
    def loss(y, a, b, g):
        return jnp.sum(cpaf(y, a, b, base, implementation=impl) * g)

    return jax.jit(jax.grad(loss, (0, 1, 2)))


def _uses_kernel(fn, *args) -> bool:
    return cpu_kernel.TARGET in fn.lower(*args).as_text()


def _kernel_grads(base):
    """The kernel's form of ``base`` called directly (``kernel_vjp.terms_backward``), as
    ``_grads``: ``(y, a, b, g) -> (dy, da, db)``."""
    spec = kernel_vjp.base_spec(base)
    return jax.jit(lambda y, a, b, g: kernel_vjp.terms_backward(spec, y, a, b, g))


@pytest.mark.parametrize("base", ("sigmoid", "relu", "tanh"))
@pytest.mark.parametrize("sharing", tuple(SHARING))
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_kernel_gradients_equal_the_xla_backward(rng, base, sharing, shape):
    for k in (1, 2, 3, 8):
        y, g, a, b = _inputs(rng, shape, SHARING[sharing](shape, k))
        default, xla = _grads("custom_vjp", base), _grads("xla_vjp", base)
        # The default's backward is the kernel for transcendental bases only (kernel_form).
        assert _uses_kernel(default, y, a, b, g) == (base != "relu")
        assert not _uses_kernel(xla, y, a, b, g)
        want = xla(y, a, b, g)
        for fn in (default, _kernel_grads(base)):
            for got, w in zip(fn(y, a, b, g), want, strict=True):
                scale = float(np.max(np.abs(w))) + 1.0
                np.testing.assert_allclose(got, w, rtol=2e-5, atol=2e-5 * scale)


# (y shape, p shape): 131,072 elements, over the 65,536 per chunk at which the kernel splits
# its work over threads: wide rows by column blocks, narrow rows by rows (per-chunk partial
# sums added at the end), and one parameter set shared by every element.
SPLIT_SHAPES = (((128, 1024), (1024, 3)), ((2048, 64), (64, 2)), ((4096, 32), (2,)))


@pytest.mark.parametrize("shape,p_shape", SPLIT_SHAPES, ids=str)
def test_work_split_over_threads_equals_the_xla_backward(rng, shape, p_shape):
    y, g, a, b = _inputs(rng, shape, p_shape)
    kernel, xla = _grads("custom_vjp", "sigmoid"), _grads("xla_vjp", "sigmoid")
    assert y.size >= 131_072 and _uses_kernel(kernel, y, a, b, g)
    for got, want in zip(kernel(y, a, b, g), xla(y, a, b, g), strict=True):
        # The parameter sums run over up to 131,072 rows: float32 rounding grows with them.
        scale = float(np.max(np.abs(want))) + 1.0
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * scale)


def test_kernel_under_vmap_equals_each_member(rng):
    """vmap over members with their own parameters (a sweep): the kernel's batched call."""
    shape, p_shape = (16, 5, 5, 3), (4, 5, 5, 3, 2)
    y = rng.normal(size=(4, *shape)).astype(np.float32)
    g = rng.normal(size=(4, *shape)).astype(np.float32)
    a, b = (rng.normal(size=p_shape).astype(np.float32) for _ in range(2))
    fn = _grads("custom_vjp", "sigmoid")
    batched = jax.vmap(fn)(y, a, b, g)
    for m in range(4):
        for got, want in zip(batched, fn(y[m], a[m], b[m], g[m]), strict=True):
            np.testing.assert_allclose(got[m], want, rtol=1e-6, atol=1e-6)


def test_operands_in_their_own_shape_equal_the_row_view(rng):
    """``y`` and ``g`` go to the kernel in the input's shape (rows: its leading axes), and
    XLA's operands keep that shape, so the cotangent's producer is not computed in a view."""
    y, g, a, b = _inputs(rng, (6, 5, 4, 3), (4, 3, 2))
    at, bt = (jnp.asarray(p).reshape(12, 2).T for p in (a, b))
    own = jax.jit(lambda *v: cpu_kernel.backward(*v, 1))(y, g, at, bt)
    view = jax.jit(lambda y, g, *p: cpu_kernel.backward(y.reshape(6, 60), g.reshape(6, 60), *p, 1))
    want = view(y, g, at, bt)
    assert own[0].shape == y.shape
    for got, w in zip(own, want, strict=True):
        np.testing.assert_array_equal(np.asarray(got).ravel(), np.asarray(w).ravel())
    hlo = _grads("custom_vjp", "sigmoid").lower(y, a, b, g).as_text()
    (call,) = [line for line in hlo.splitlines() if f"custom_call @{cpu_kernel.TARGET}" in line]
    assert call.count("tensor<6x5x4x3xf32>") == 3  # y, g and dy
    with pytest.raises(ValueError, match="one shape"):
        cpu_kernel.backward(y, g.reshape(6, 60), at, bt, 1)
    with pytest.raises(ValueError, match="rows of M = 12"):
        cpu_kernel.backward(y[:, :, :1], g[:, :, :1], at, bt, 1)


@pytest.mark.parametrize("grads", ("default sigmoid", "kernel relu"))
def test_a_nan_cotangent_makes_the_gradients_nan(rng, grads):
    y, g, a, b = _inputs(rng, (8, 40), (40, 2))
    g[3, 7] = np.nan
    fn = _grads("custom_vjp", "sigmoid") if grads == "default sigmoid" else _kernel_grads("relu")
    assert _uses_kernel(fn, y, a, b, g)
    dy, da, db = fn(y, a, b, g)
    assert np.isnan(dy[3, 7]) and np.isfinite(np.delete(dy.ravel(), 3 * 40 + 7)).all()
    assert np.isnan(da[7]).all() and np.isnan(db[7]).all()
    assert np.isfinite(np.delete(np.asarray(da), 7, axis=0)).all()


def test_bfloat16_inputs_use_the_kernel_in_float32(rng):
    y, g, a, b = _inputs(rng, (16, 300), (300, 2))
    y16, g16 = jnp.asarray(y, jnp.bfloat16), jnp.asarray(g, jnp.bfloat16)
    kernel, xla = _grads("custom_vjp", "sigmoid"), _grads("xla_vjp", "sigmoid")
    assert _uses_kernel(kernel, y16, a, b, g16)
    for got, want in zip(kernel(y16, a, b, g16), xla(y16, a, b, g16), strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(
            np.asarray(got, np.float32), np.asarray(want, np.float32), rtol=2e-2, atol=2e-2
        )


def test_cases_the_kernel_does_not_compute_use_the_xla_backward(rng):
    y, g, a, b = _inputs(rng, (8, 6, 5), (6, 1, 2))  # shared along an inner axis only
    assert not _uses_kernel(_grads("custom_vjp", "sigmoid"), y, a, b, g)
    y, g, a, b = _inputs(rng, (8, 6), (6, 9))  # k = 9 > 8
    assert not _uses_kernel(_grads("custom_vjp", "sigmoid"), y, a, b, g)
    fn = jax.jit(jax.grad(lambda y, a, b: jnp.sum(cpaf(y, a, b, jnp.sin)), (0, 1, 2)))
    assert not _uses_kernel(fn, y, a[:, :2], b[:, :2])  # a user's base


_FALLBACK = textwrap.dedent(
    """
    import warnings, jax, jax.numpy as jnp
    from cpaf_jax import cpaf
    from cpaf_jax.ops import cpu_kernel, kernel_vjp
    y, a, b = jnp.linspace(-2, 2, 24).reshape(4, 6), jnp.ones((6, 2)), jnp.zeros((6, 2))
    fn = jax.jit(jax.grad(lambda y, a, b: jnp.sum(cpaf(y, a, b)), (0, 1, 2)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = fn.lower(y, a, b).as_text()
        grads = fn(y, a, b)
    print(cpu_kernel.TARGET in text, [str(w.message) for w in caught])
    """
)


@pytest.mark.parametrize(
    "env,warned",
    [({"CPAF_JAX_CPU_KERNEL": "0"}, False), ({"CXX": "false"}, True)],
    ids=["disabled", "build-fails"],
)
def test_without_the_kernel_cpaf_falls_back_to_xla(tmp_path, jax_subprocess_env, env, warned):
    proc = subprocess.run(
        [sys.executable, "-c", _FALLBACK],
        env={**jax_subprocess_env, "CPAF_JAX_CACHE": str(tmp_path), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    used, messages = proc.stdout.strip().split(" ", 1)
    assert used == "False"
    assert ("one-pass CPU kernel" in messages) is warned
