"""Section 2b: CPAF dropped into a network a user writes, without the library's fused blocks.

Two networks, each trained by one jitted, donated Adam step on random data (batch 128):

* ``4.2 network, plain JAX``: the Fashion-MNIST network of experiment 4.2 written with
  ``lax.conv_general_dilated``, a reshape max-pool and ``jnp.dot``; only the activation comes
  from ``cpaf_jax`` (``cpaf_jax.cpaf`` with per-element ``a``, ``b``, Table 1 initial values).
* ``Flax MNIST CNN``: the CNN of Flax's MNIST tutorial (``Conv(32) - act - avg_pool -
  Conv(64) - act - avg_pool - Dense(256) - act - Dense(10)``) in ``flax.linen``, with
  ``cpaf_jax.activations.linen.CPAF`` (per element) in place of ``nn.relu``.

Every step is compiled twice, as a user would: with plain ``jax.jit`` (XLA's default options,
YNN fusions on XLA:CPU) and with ``cpaf_jax.jit`` (this package's options). Each activation's
step is timed interleaved with the same network's ReLU step under the same compilation (ratio
per round, median [range]), and its compiled memory (temp + arguments + outputs - aliased) is
given as a ratio to that ReLU step's. The ReLU step under ``cpaf_jax.jit`` also gets its ratio
to the ReLU step under ``jax.jit``, in the same rounds.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import linen as nn

from benchmarks.timing import interleaved_samples, ratio_spread
from cpaf_jax import compile_options
from cpaf_jax.activations import linen as cpaf_linen
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.ops.bases import resolve_base
from cpaf_jax.ops.functional import cpaf

#: How a step is compiled: ``"jax.jit"`` (XLA's defaults) and ``"cpaf_jax.jit"``.
JITS = {"jax.jit": jax.jit, "cpaf_jax.jit": compile_options.jit}

#: ``cpaf_<base>`` uses ``cpaf``'s default implementation (on CPU the sigmoid base's backward
#: is the one-pass kernel, which needs the cotangent written out: here the max-pool's
#: backward; the ReLU base's is XLA's), and ``cpaf_sigmoid (xla_vjp)`` the same custom VJP
#: with XLA's backward, into which XLA fuses that producer.
ACTIVATIONS = ("relu", "cpaf_relu", "cpaf_sigmoid", "cpaf_sigmoid (xla_vjp)")


def _base_and_impl(activation: str) -> tuple[str, str | None]:
    """``"cpaf_sigmoid (xla_vjp)"`` -> ``("sigmoid", "xla_vjp")``, ``"cpaf_relu"`` ->
    ``("relu", None)``: the base and the implementation (``None``: the default)."""
    name, _, impl = activation.removeprefix("cpaf_").partition(" (")
    return name, impl.rstrip(")") or None


def _max_pool(x):
    """2x2 max-pool by reshape (odd edges dropped), what a user writes without reduce_window."""
    n, h, w, c = x.shape
    x = x[:, : h // 2 * 2, : w // 2 * 2]
    return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def _act_params(activation: str, features: tuple[int, ...]) -> dict:
    if activation == "relu":
        return {}
    a0, b0 = default_terms(resolve_base(_base_and_impl(activation)[0]), 2)
    shape = tuple(features) + (2,)
    return {
        "a": jnp.broadcast_to(jnp.asarray(a0, jnp.float32), shape),
        "b": jnp.broadcast_to(jnp.asarray(b0, jnp.float32), shape),
    }


def _act(activation: str, p: dict, x):
    if activation == "relu":
        return jax.nn.relu(x)
    base, impl = _base_and_impl(activation)
    return cpaf(x, p["a"], p["b"], base, implementation=impl)


def plain_init(activation: str, seed: int = 0) -> dict:
    """Parameters of the 4.2 network (NHWC, 28x28x1 input): convs 16-32-4, dense 30, 10."""
    keys = iter(jax.random.split(jax.random.key(seed), 8))

    def dense(shape):
        return jax.random.normal(next(keys), shape) / np.sqrt(np.prod(shape[:-1]))

    return {
        "c1": dense((3, 3, 1, 16)),
        "c1b": jnp.zeros(16),
        "c2": dense((3, 3, 16, 32)),
        "c2b": jnp.zeros(32),
        "c3": dense((3, 3, 32, 4)),
        "c3b": jnp.zeros(4),
        "d1": dense((36, 30)),
        "d1b": jnp.zeros(30),
        "d2": dense((30, 10)),
        "d2b": jnp.zeros(10),
        "act1": _act_params(activation, (26, 26, 16)),
        "act2": _act_params(activation, (11, 11, 32)),
        "act3": _act_params(activation, (3, 3, 4)),
        "act4": _act_params(activation, (30,)),
    }


def plain_apply(activation: str, p: dict, x):
    """The 4.2 network's logits ``[N, 10]`` for images ``[N, 28, 28, 1]``."""

    def conv(x, w, b):
        dn = ("NHWC", "HWIO", "NHWC")
        return jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=dn) + b

    x = _max_pool(_act(activation, p["act1"], conv(x, p["c1"], p["c1b"])))
    x = _max_pool(_act(activation, p["act2"], conv(x, p["c2"], p["c2b"])))
    x = _act(activation, p["act3"], conv(x, p["c3"], p["c3b"]))
    x = _act(activation, p["act4"], x.reshape(x.shape[0], -1) @ p["d1"] + p["d1b"])
    return x @ p["d2"] + p["d2b"]


class FlaxMnistCNN(nn.Module):
    """Flax's MNIST-tutorial CNN with the activation chosen by name."""

    activation: str = "relu"

    def _act(self, x):
        if self.activation == "relu":
            return nn.relu(x)
        base, impl = _base_and_impl(self.activation)
        return cpaf_linen.CPAF(base=base, sharing="element", implementation=impl)(x)

    @nn.compact
    def __call__(self, x):
        x = self._act(nn.Conv(features=32, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = self._act(nn.Conv(features=64, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        x = x.reshape((x.shape[0], -1))
        x = self._act(nn.Dense(features=256)(x))
        return nn.Dense(features=10)(x)


def _network(name: str, activation: str):
    """``(params, apply(params, images) -> logits)`` of one network."""
    if name == "4.2 network, plain JAX":
        return plain_init(activation), functools.partial(plain_apply, activation)
    model = FlaxMnistCNN(activation)
    params = model.init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
    return params, model.apply


NETWORKS = ("4.2 network, plain JAX", "Flax MNIST CNN")


class UserStep:
    """One network's jitted, donated Adam step on device-resident random data; callable."""

    def __init__(
        self, network: str, activation: str, batch: int, seed: int = 0, jit: str = "cpaf_jax.jit"
    ):
        params, apply = _network(network, activation)
        tx = optax.adam(1e-3)

        def step(state, x, y):
            params, opt = state

            def loss(params):
                logits = apply(params, x)
                return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

            grads = jax.grad(loss)(params)
            updates, opt = tx.update(grads, opt, params)
            return optax.apply_updates(params, updates), opt

        rng = np.random.default_rng(seed)
        self.batches = [
            (
                jnp.asarray(rng.normal(size=(batch, 28, 28, 1)).astype(np.float32)),
                jnp.asarray(rng.integers(0, 10, batch).astype(np.int32)),
            )
            for _ in range(4)
        ]
        self.state = (params, tx.init(params))
        self.step = JITS[jit](step, donate_argnums=(0,))
        self._i = 0

    def __call__(self):
        self._i += 1
        self.state = self.step(self.state, *self.batches[self._i % 4])
        return self.state

    def memory(self) -> int:
        """Compiled memory of the step in bytes (temp + arguments + outputs - aliased)."""
        m = self.step.lower(self.state, *self.batches[0]).compile().memory_analysis()
        alias = int(getattr(m, "alias_size_in_bytes", 0))
        return int(m.temp_size_in_bytes + m.argument_size_in_bytes + m.output_size_in_bytes) - alias


def run(mode: str) -> dict:
    """Returns ``{"rows": [{network, jit, activation, batch, step_ms, ratio, ratio_lo, ratio_hi,
    memory, mem_ratio}]}``; ratios are to the same network's ReLU step under the same ``jit``;
    the ``cpaf_jax.jit`` ReLU row also has ``to_jax_jit``, its ratio to the ``jax.jit`` one."""
    batch = 32 if mode == "smoke" else 128
    repeats, iters = {"smoke": (1, 2), "quick": (5, 5), "full": (15, 10)}[mode]
    rows = []
    for net in NETWORKS:
        runners = {(j, a): UserStep(net, a, batch, jit=j) for j in JITS for a in ACTIVATIONS}
        samples = interleaved_samples(runners, repeats=repeats, iters=iters, warmup=2)
        mem = {key: r.memory() for key, r in runners.items()}
        for j in JITS:
            own = {a: samples[(j, a)] for a in ACTIVATIONS}
            rows += step_rows(net, batch, own, {a: mem[(j, a)] for a in ACTIVATIONS}, jit=j)
        relu = ratio_spread({j: samples[(j, "relu")] for j in JITS}, "jax.jit")["cpaf_jax.jit"]
        for r in rows:
            if (r["network"], r["jit"], r["activation"]) == (net, "cpaf_jax.jit", "relu"):
                r["to_jax_jit"] = relu["median"]
    return {"rows": rows}


def step_rows(net: str, batch: int, samples: dict, mem: dict, jit: str = "cpaf_jax.jit") -> list:
    """One row per activation: best step time, ratio to ReLU's in the same rounds (median,
    range) and compiled memory with its ratio to ReLU's.

    Args:
      net: the network's name; batch: its batch size; jit: how the steps were compiled.
      samples: activation -> step times (s) of interleaved rounds (must include ``"relu"``).
      mem: activation -> compiled step memory (bytes).
    """
    spread = ratio_spread(samples, "relu")
    return [
        {
            "network": net,
            "jit": jit,
            "activation": a,
            "batch": batch,
            "step_ms": min(samples[a]) * 1e3,
            "ratio": spread[a]["median"],
            "ratio_lo": spread[a]["lo"],
            "ratio_hi": spread[a]["hi"],
            "memory": mem[a],
            "mem_ratio": mem[a] / mem["relu"],
        }
        for a in samples
    ]
