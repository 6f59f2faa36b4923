"""Values and gradients under a real 8-device ``jax.shard_map`` equal the unsharded ones.

The test process has one CPU device, so the check runs in a fresh process with
``jax_num_cpu_devices = 8`` (as ``tests/training/test_sweep.py`` does for sweeps). The batch axis is
split over the 8 devices and the parameters are replicated, the usual data-parallel layout;
every case is differentiated three ways:

* ``outside``: ``jax.vjp`` around the ``shard_map``-ed forward pass (JAX transposes the
  replication into a ``psum`` of the parameter gradients);
* ``inside``: ``jax.vjp`` inside the ``shard_map`` body with the default ``check_vma=True``,
  parameter cotangents returned replicated (``out_specs=P()``);
* ``inside_psum``: the same with ``check_vma=False`` and an explicit ``lax.psum``, the older
  idiom.

Per-element CPAF runs in every implementation (the two custom VJPs in every base); APL, PAU
and Swish, whose custom VJP calls the CPU kernel outside ``shard_map``; the fused
conv-bias + CPAF + 2x2 pool (``cpaf_max_pool_2x2``) with per-element and per-channel
parameters, with and without a bias.
Each result is compared with the same function, unsharded, in the same process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

N_DEVICES = 8

_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import jax
    jax.config.update("jax_num_cpu_devices", 8)
    import numpy as np
    from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
    from cpaf_jax import cpaf, cpaf_max_pool_2x2
    from cpaf_jax.ops.functional import IMPLEMENTATIONS
    from cpaf_jax.activations.apl import apl
    from cpaf_jax.activations.pau import pau
    from cpaf_jax.activations.swish import swish

    CUSTOM = ("custom_vjp",)
    assert jax.device_count() == 8, jax.devices()
    mesh = Mesh(np.array(jax.devices()), ("batch",))
    N, H, W, C, K = 16, 6, 6, 3, 2
    rng = np.random.default_rng(0)
    f32 = lambda *s: rng.normal(size=s).astype(np.float32)
    y = f32(N, H, W, C)
    cases = {}  # name -> (fn of the differentiated args, their shapes after y, output shape)
    for base in ("sigmoid", "relu", "tanh"):
        # The custom VJPs in every base; plain autodiff (unrolled, naive) in one.
        for impl in IMPLEMENTATIONS if base == "sigmoid" else CUSTOM:
            fn = lambda y, a, b, base=base, impl=impl: cpaf(y, a, b, base, implementation=impl)
            cases[f"cpaf-{base}-{impl}"] = (fn, [(H, W, C, K)] * 2, (N, H, W, C))
    # The peers whose custom VJP calls the CPU kernel outside shard_map.
    cases["peer-apl"] = (apl, [(H, W, C, K)] * 2, (N, H, W, C))
    cases["peer-pau"] = (pau, [(6,), (4,)], (N, H, W, C))
    cases["peer-swish"] = (swish, [(C,)], (N, H, W, C))
    for base in ("sigmoid", "relu"):
        for sharing, p in (("element", (H, W, C, K)), ("channel", (C, K))):
            pooled = (N, H // 2, W // 2, C)
            fn = lambda y, a, b, c, base=base: cpaf_max_pool_2x2(y, a, b, base, bias=c)
            cases[f"pool-{base}-{sharing}-bias"] = (fn, [p, p, (C,)], pooled)
            fn = lambda y, a, b, base=base: cpaf_max_pool_2x2(y, a, b, base)
            cases[f"pool-{base}-{sharing}-nobias"] = (fn, [p, p], pooled)

    local_batch, out, meta = set(), {}, {}
    for name, (fn, p_shapes, z_shape) in cases.items():
        g, params = f32(*z_shape), [f32(*s) for s in p_shapes]
        specs = (P("batch"), P("batch"), *(P() for _ in params))  # g, y, then the parameters
        grad_specs = (P("batch"), *(P() for _ in params))  # dL/dy, then the parameters

        def vjp(g, *d, fn=fn):
            local_batch.add(d[0].shape[0])
            z, pull = jax.vjp(fn, *d)
            return (z, *pull(g))

        def vjp_psum(g, *d, vjp=vjp):
            z, gy, *gp = vjp(g, *d)
            return (z, gy, *(jax.lax.psum(t, "batch") for t in gp))

        fwd = jax.shard_map(fn, mesh=mesh, in_specs=specs[1:], out_specs=P("batch"))

        def vjp_around(g, *d, fwd=fwd):
            z, pull = jax.vjp(fwd, *d)
            return (z, *pull(g))

        results = {
            "reference": jax.jit(vjp)(g, y, *params),
            "inside": jax.jit(jax.shard_map(vjp, mesh=mesh, in_specs=specs,
                                            out_specs=(P("batch"), *grad_specs)))(g, y, *params),
            "inside_psum": jax.jit(jax.shard_map(vjp_psum, mesh=mesh, in_specs=specs,
                                                 out_specs=(P("batch"), *grad_specs),
                                                 check_vma=False))(g, y, *params),
            "outside": jax.jit(vjp_around)(g, y, *params),
        }
        for mode, arrays in results.items():
            for i, arr in enumerate(arrays):
                out[f"{name}/{mode}/{i}"] = np.asarray(arr)
        z_sharding = results["inside"][0].sharding
        meta[name] = {
            "z_devices": len(z_sharding.device_set),
            "z_batch_split": z_sharding.is_equivalent_to(NamedSharding(mesh, P("batch")), 4),
            "n_outputs": 2 + len(params),
        }
    meta["local_batch"] = sorted(local_batch)
    np.savez(sys.argv[1], **out)
    json.dump(meta, open(sys.argv[2], "w"))
    """
)

# The case names the script builds (kept in step with it: the test below checks the lists).
_IMPLS = ("custom_vjp", "xla_vjp", "unrolled", "naive")
CASES = (
    [f"cpaf-sigmoid-{i}" for i in _IMPLS]
    + [f"cpaf-{b}-custom_vjp" for b in ("relu", "tanh")]
    + [f"peer-{p}" for p in ("apl", "pau", "swish")]
    + [
        f"pool-{b}-{s}-{c}"
        for b in ("sigmoid", "relu")
        for s in ("element", "channel")
        for c in ("bias", "nobias")
    ]
)
MODES = ("inside", "inside_psum", "outside")


@pytest.fixture(scope="module")
def sharded(tmp_path_factory, jax_subprocess_env):
    """Runs the 8-device script once; returns (arrays, metadata)."""
    tmp = tmp_path_factory.mktemp("multidevice")
    script, arrays, meta = tmp / "sharded.py", tmp / "out.npz", tmp / "meta.json"
    script.write_text(_SCRIPT)
    proc = subprocess.run(
        [sys.executable, str(script), str(arrays), str(meta)],
        env=jax_subprocess_env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return dict(np.load(arrays)), json.loads(meta.read_text())


def test_implementations_listed_here_are_the_library_s():
    from cpaf_jax.ops.functional import IMPLEMENTATIONS

    assert tuple(IMPLEMENTATIONS) == _IMPLS


def test_script_ran_on_eight_devices_with_the_batch_split(sharded):
    _, meta = sharded
    assert set(meta) - {"local_batch"} == set(CASES)
    # Traced once unsharded (16 rows) and inside each shard_map (16 / 8 = 2 rows per device).
    assert meta["local_batch"] == [16 // N_DEVICES, 16]
    for name in CASES:
        assert meta[name]["z_devices"] == N_DEVICES and meta[name]["z_batch_split"], name


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CASES)
def test_sharded_values_and_gradients_equal_unsharded(sharded, case, mode):
    arrays, meta = sharded
    for i in range(meta[case]["n_outputs"]):
        got, want = arrays[f"{case}/{mode}/{i}"], arrays[f"{case}/reference/{i}"]
        assert got.shape == want.shape, (case, mode, i)
        assert np.all(np.isfinite(want)) and np.any(want != 0), (case, i)
        # Outputs 0 and 1 (z, dL/dy) are elementwise: the same float32 operations on each
        # device. The parameter gradients (2+) are sums over the batch that the devices add
        # in another order: float32 rounding of a sum of 16 or 16*H*W terms.
        tol = 2e-6 if i < 2 else 2e-5 * float(np.max(np.abs(want)))
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=tol, err_msg=f"{case} {mode} {i}")
