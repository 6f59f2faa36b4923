"""Compiler options: applied on CPU only, overridable, and they change how XLA compiles."""

import os

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


def _fusions(fun, *args, **jit_kwargs) -> int:
    """Number of fusion instructions in the optimised HLO ``compile_options.jit`` produces."""
    return compile_options.jit(fun, **jit_kwargs).lower(*args).compile().as_text().count("fusion(")


def _elementwise(v):
    return jnp.exp(v) * 2.0 + 1.0


# A caller's option whose effect shows in the compiled HLO: with XLA's fusion pass disabled the
# three elementwise ops (and the broadcasts) stay separate instead of one loop fusion.
_NO_FUSION = {"xla_disable_hlo_passes": "fusion"}


def test_jit_matches_plain_jit():
    x, w = _args()
    ours = compile_options.jit(_conv)(x, w)
    np.testing.assert_allclose(ours, jax.jit(_conv)(x, w), rtol=1e-5, atol=1e-5)


def test_caller_options_reach_the_compiled_program():
    x = jnp.zeros((64,))
    plain = _fusions(_elementwise, x)
    unfused = jax.jit(_elementwise, compiler_options=_NO_FUSION).lower(x).compile().as_text()
    assert unfused.count("fusion(") > plain  # the probe itself works on this jaxlib
    # Merged with ours, not dropped: the compiled program shows the caller's option...
    assert _fusions(_elementwise, x, compiler_options=_NO_FUSION) == unfused.count("fusion(")
    # ...and still ours (when ours are in use): no YNN fusion for the convolution.
    if compile_options.compiler_options() is not None:
        x, w = _args()
        conv_act = lambda x, w: _elementwise(_conv(x, w))
        text = compile_options.jit(conv_act, compiler_options=_NO_FUSION).lower(x, w).compile()
        assert "%ynn_fusion" not in text.as_text()
        assert text.as_text().count("fusion(") > _fusions(conv_act, x, w)


def test_caller_option_overrides_ours():
    x, w = _args()
    mine = {"xla_cpu_experimental_ynn_fusion_type": "LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION"}
    text = compile_options.jit(_conv, compiler_options=mine).lower(x, w).compile().as_text()
    default = jax.jit(_conv, compiler_options=mine).lower(x, w).compile().as_text()
    assert "%ynn_fusion" in default  # this jaxlib hands the convolution to YNN when asked...
    assert "%ynn_fusion" in text  # ...and the caller's choice beats our empty list


def test_defaults_switch_leaves_xla_alone_but_keeps_caller_options(monkeypatch):
    monkeypatch.setenv("CPAF_JAX_XLA_DEFAULTS", "1")
    x, w = _args()
    loss = jax.grad(lambda w: jnp.sum(jax.nn.relu(_conv(x, w)) ** 2))
    ours = compile_options.jit(loss).lower(w).compile().as_text()
    default = jax.jit(loss).lower(w).compile().as_text()
    assert ("%ynn_fusion" in ours) == ("%ynn_fusion" in default)
    v = jnp.zeros((64,))
    assert _fusions(_elementwise, v, compiler_options=_NO_FUSION) > _fusions(_elementwise, v)


def test_our_programs_keep_convolutions_in_xla():
    x, w = _args()
    loss = jax.grad(lambda w: jnp.sum(jax.nn.relu(_conv(x, w)) ** 2))
    ours = compile_options.jit(loss).lower(w).compile().as_text()
    default = jax.jit(loss).lower(w).compile().as_text()
    if compile_options.compiler_options() is None:
        # XLA's defaults are in use, and only for the documented reasons; ours is then the
        # same program as a plain jax.jit.
        assert (
            jax.default_backend() != "cpu"
            or os.environ.get("CPAF_JAX_XLA_DEFAULTS", "") not in ("", "0")
            or "xla_cpu_experimental_ynn_fusion_type" in os.environ.get("XLA_FLAGS", "")
            or not compile_options._accepted("cpu")
        )
        assert ("%ynn_fusion" in ours) == ("%ynn_fusion" in default)
        return
    assert compile_options.compiler_options() == compile_options.CPU_OPTIONS
    assert "%ynn_fusion" in default  # XLA's default hands these convolutions to YNNPACK...
    assert "%ynn_fusion" not in ours  # ...and ours keeps them in XLA.


YNN = "xla_cpu_experimental_ynn_fusion_type"


def test_ynn_fusions_on_table():
    # (platform, XLA_FLAGS, jaxlib knows the option, types of the traced jit) -> YNN on
    table = [
        ("cpu", "", True, None, True),  # plain jax.jit: this jaxlib's default
        ("cpu", "", True, "", False),  # inside cpaf_jax.jit
        ("cpu", "", True, "LIBRARY_FUSION_TYPE_DOT", True),  # the caller's own types win
        ("cpu", f"--{YNN}=", True, None, False),
        ("cpu", f"--xla_foo=1 --{YNN}=LIBRARY_FUSION_TYPE_REDUCE", True, None, True),
        ("cpu", f"--{YNN}=X --{YNN}=", True, None, False),  # the last flag counts
        ("cpu", f"--{YNN}=", True, "X", True),  # the jit's setting before XLA_FLAGS
        ("cpu", "", False, None, False),  # a jaxlib without YNN fusions
        ("gpu", "", True, None, False),
        ("tpu", "", True, "", False),
    ]
    for platform, flags, accepted, traced, want in table:
        got = compile_options.ynn_fusions_on(platform, flags, accepted, traced)
        assert got is want, (platform, flags, accepted, traced)


def test_ynn_fusions_sees_which_jit_traces(monkeypatch):
    monkeypatch.delenv("CPAF_JAX_XLA_DEFAULTS", raising=False)
    monkeypatch.setenv("XLA_FLAGS", "")
    if not compile_options._accepted("cpu"):
        assert compile_options.ynn_fusions("cpu") is False
        return
    seen = []

    def f(v):
        seen.append(compile_options.ynn_fusions())
        return v + 1

    x = jnp.ones(3)
    compile_options.jit(f)(x)
    jax.jit(f)(x)
    compile_options.jit(f, compiler_options={YNN: "LIBRARY_FUSION_TYPE_DOT"})(x)
    assert seen == [False, True, True]
    assert compile_options.ynn_fusions() is True  # the context ends with the trace
