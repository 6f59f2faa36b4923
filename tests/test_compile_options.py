"""Compiler options: applied on CPU only, overridable, and they change how XLA compiles."""

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax import compile_options


def _conv(x, w):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _args():
    # The second FashionNet conv's shapes, at a small batch.
    x = jax.random.normal(jax.random.key(0), (8, 13, 13, 16))
    w = jax.random.normal(jax.random.key(1), (3, 3, 16, 32))
    return x, w


def test_options_on_cpu_only(monkeypatch):
    monkeypatch.delenv("CPAF_JAX_XLA_DEFAULTS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    expected = compile_options.CPU_OPTIONS if compile_options._accepted("cpu") else None
    assert compile_options.compiler_options("cpu") == expected
    assert compile_options.compiler_options("gpu") is None
    assert compile_options.compiler_options("tpu") is None


def test_user_settings_win(monkeypatch):
    monkeypatch.setenv("CPAF_JAX_XLA_DEFAULTS", "1")
    assert compile_options.compiler_options("cpu") is None
    monkeypatch.delenv("CPAF_JAX_XLA_DEFAULTS")
    monkeypatch.setenv(
        "XLA_FLAGS", "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"
    )
    assert compile_options.compiler_options("cpu") is None


def test_jit_matches_plain_jit_and_keeps_caller_options():
    x, w = _args()
    ours = compile_options.jit(_conv)(x, w)
    np.testing.assert_allclose(ours, jax.jit(_conv)(x, w), rtol=1e-5, atol=1e-5)
    # A caller's own option is merged with ours, not dropped.
    f = compile_options.jit(_conv, compiler_options={"xla_backend_optimization_level": 1})
    np.testing.assert_allclose(f(x, w), ours, rtol=1e-5, atol=1e-5)


def test_our_programs_keep_convolutions_in_xla():
    if compile_options.compiler_options() is None:
        return  # nothing to check: XLA's defaults are in use (another backend or old jaxlib)
    x, w = _args()
    loss = jax.grad(lambda w: jnp.sum(jax.nn.relu(_conv(x, w)) ** 2))
    ours = compile_options.jit(loss).lower(w).compile().as_text()
    default = jax.jit(loss).lower(w).compile().as_text()
    assert "%ynn_fusion" in default  # XLA's default hands these convolutions to YNNPACK...
    assert "%ynn_fusion" not in ours  # ...and ours keeps them in XLA.
