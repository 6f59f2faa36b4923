"""Portable programs: the train step of every parametric family exports (``jax.export``) for
GPU and TPU from this CPU machine, and for CPU without the one-pass CPU kernel.

The kernel is an FFI custom call registered for CPU only, chosen inside one program with
``platform_dependent``; lowering for another platform must take the XLA backward and leave no
trace of the kernel. A CPU export cannot carry the kernel (its target has no serialisation
guarantee), so CPU programs are exported with the kernel switched off
(``CPAF_JAX_CPU_KERNEL=0``, docs: Scaling out).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from cpaf_jax.activations.registry import is_parametric, known_activations
from cpaf_jax.models import build_model
from cpaf_jax.ops import cpu_kernel
from cpaf_jax.training.members import Member, init_states, member_tx
from cpaf_jax.training.state import make_train_step

PARAMETRIC = [a for a in known_activations() if is_parametric(a)]
N, B = 8, 4


def _step_and_args(activation: str):
    """The paper's Fashion-MNIST network's jitted train step and abstract arguments."""
    tx_fn = member_tx("adam")
    member = Member(seed=0)
    graphdef, (state,) = init_states(
        [member], lambda m: build_model("fashion_mnist", activation, seed=m.seed), tx_fn
    )
    step = jax.jit(make_train_step(graphdef, tx_fn(member)))
    args = (
        jax.tree.map(lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), state),
        jax.ShapeDtypeStruct((N, 28, 28, 1), jnp.float32),
        jax.ShapeDtypeStruct((N,), jnp.int32),
        jax.ShapeDtypeStruct((B,), jnp.int32),
    )
    return step, args, state


@pytest.mark.parametrize("activation", PARAMETRIC)
def test_train_step_exports_for_gpu_and_tpu_without_the_cpu_kernel(activation):
    assert cpu_kernel.available(), "the CPU kernel is built here, so its branch could leak"
    step, args, _ = _step_and_args(activation)
    for platform in ("cuda", "tpu"):
        exported = jax.export.export(step, platforms=(platform,))(*args)
        text = exported.mlir_module()
        assert exported.platforms == (platform,)
        assert cpu_kernel.TARGET not in text, f"{activation}: the CPU kernel leaked into {platform}"
        assert "stablehlo.convolution" in text  # the whole network, not an empty shell


def test_a_cpu_export_needs_the_kernel_off_and_then_runs(monkeypatch):
    step, args, _ = _step_and_args("cpaf_sigmoid")
    with pytest.raises(ValueError, match="custom call"):  # the kernel cannot be serialised
        jax.export.export(step, platforms=("cpu",))(*args)
    # What CPAF_JAX_CPU_KERNEL=0 does before the first use: the XLA backward everywhere (a
    # fresh step: the kernel is chosen when a step is traced).
    monkeypatch.setitem(cpu_kernel._state, "error", "disabled by CPAF_JAX_CPU_KERNEL=0")
    step, args, state = _step_and_args("cpaf_sigmoid")
    exported = jax.export.export(step, platforms=("cpu",))(*args)
    assert cpu_kernel.TARGET not in exported.mlir_module()
    rng = np.random.default_rng(0)
    images = rng.standard_normal((N, 28, 28, 1)).astype(np.float32)
    labels = rng.integers(0, 10, N).astype(np.int32)
    idx = np.arange(B, dtype=np.int32)
    new = exported.call(state, images, labels, idx)  # the exported program, run here
    ref = step(state, images, labels, idx)
    assert int(new.count) == B and np.isfinite(float(new.loss_sum))
    np.testing.assert_allclose(float(new.loss_sum), float(ref.loss_sum), rtol=1e-5)
