"""Sections 2 and 3: a full training step of each paper network per activation, and its
compiled memory, each as a ratio to ReLU's in the same run.

Steps are ``cpaf_jax.training.state.make_train_step`` (the one the training engine runs), jitted
with the state donated, on random data of the network's input shape; FashionNet and the MNIST net
use Adam (as in 4.1), the CIFAR nets RMSprop (4.3). Memory is
``jit(step).lower(...).compile().memory_analysis()`` with a dataset of one batch, so the argument
size is the training state and not the dataset.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks.timing import interleaved_samples, ratio_spread
from cpaf_jax import compile_options
from cpaf_jax.models import build_model
from cpaf_jax.training import meshes as shd
from cpaf_jax.training.optim import make_optimizer
from cpaf_jax.training.state import init_state, make_train_step

NETWORKS = {
    # name: (build_model kind, kwargs, input shape, optimizer, activations)
    "MnistFeatureNet (4.1)": (
        "mnist_features",
        {},
        (28, 28, 1),
        "adam",
        ("relu", "sigmoid", "cpaf_relu", "cpaf_sigmoid"),
    ),
    "FashionNet (4.2)": (
        "fashion_mnist",
        {},
        (28, 28, 1),
        "adam",
        ("relu", "prelu", "elu", "cpaf_relu", "cpaf_sigmoid"),
    ),
    "CifarNet S1 (4.3)": (
        "cifar",
        {"structure": 1},
        (32, 32, 3),
        "rmsprop",
        ("relu", "tanh", "cpaf_relu", "cpaf_sigmoid"),
    ),
    "CifarNet S2 (4.3)": (
        "cifar",
        {"structure": 2},
        (32, 32, 3),
        "rmsprop",
        ("relu", "tanh", "cpaf_relu", "cpaf_sigmoid"),
    ),
    "CifarNet S3 (4.3)": (
        "cifar",
        {"structure": 3},
        (32, 32, 3),
        "rmsprop",
        ("relu", "tanh", "cpaf_relu", "cpaf_sigmoid"),
    ),
}


class StepRunner:
    """A jitted, donated training step on device-resident random data, callable repeatedly.

    Attributes:
      step: the jitted step; state: the current ``TrainState``; images ``[N, H, W, C]``
      float32, labels ``[N]`` int32, idxs: a few ``[batch]`` int32 index vectors.

    With ``mesh`` (a 1-D data mesh) the step is data parallel, as the engine's ``data_parallel``
    strategy runs it with several local devices: state and data replicated, each batch's indices
    split. With ``xla_defaults`` the step is compiled with XLA's default options instead of
    ``cpaf_jax.compile_options`` (to measure what those options change).
    """

    def __init__(
        self,
        kind,
        activation,
        batch,
        input_shape,
        optimizer,
        n_data=None,
        model_kwargs=None,
        activation_kwargs=None,
        seed=0,
        mesh=None,
        xla_defaults=False,
    ):
        kw = dict(model_kwargs or {})
        if activation_kwargs:
            kw["activation_kwargs"] = activation_kwargs
        model = build_model(kind, activation, seed=seed, **kw)
        self.tx = make_optimizer(optimizer, 1e-3)
        self.graphdef, self.state = init_state(model, self.tx, seed)
        self.raw_step = make_train_step(self.graphdef, self.tx)
        self._jit = jax.jit if xla_defaults else compile_options.jit
        self.step = self._jit(self.raw_step, donate_argnums=(0,))
        n = n_data or 8 * batch
        rng = np.random.default_rng(seed)
        self.images = jnp.asarray(rng.normal(size=(n,) + tuple(input_shape)).astype(np.float32))
        self.labels = jnp.asarray(rng.integers(0, 10, n).astype(np.int32))
        self.idxs = [jnp.asarray(rng.integers(0, n, batch).astype(np.int32)) for _ in range(8)]
        if mesh is not None:
            self.state, self.images, self.labels = shd.replicate(
                (self.state, self.images, self.labels), mesh
            )
            self.idxs = [shd.shard_batch(np.asarray(i), mesh) for i in self.idxs]
        self._i = 0

    def __call__(self):
        self._i += 1
        self.state = self.step(self.state, self.images, self.labels, self.idxs[self._i % 8])
        return self.state

    def memory(self) -> dict:
        """Compiled memory of the step on a one-batch dataset (bytes)."""
        b = self.idxs[0].shape[0]
        compiled = (
            self._jit(self.raw_step, donate_argnums=(0,))
            .lower(self.state, self.images[:b], self.labels[:b], self.idxs[0] % b)
            .compile()
        )
        m = compiled.memory_analysis()
        out = {
            "temp": int(m.temp_size_in_bytes),
            "argument": int(m.argument_size_in_bytes),
            "output": int(m.output_size_in_bytes),
            "alias": int(getattr(m, "alias_size_in_bytes", 0)),
        }
        out["total"] = out["temp"] + out["argument"] + out["output"] - out["alias"]
        return out


def _batch(kind: str, mode: str) -> int:
    if kind == "cifar":
        return {"smoke": 8, "quick": 32, "full": 64}[mode]
    return {"smoke": 32, "quick": 128, "full": 128}[mode]


def fusion_rows(mode: str) -> list[dict]:
    """FashionNet with and without the fused conv-bias + activation + pool blocks.

    Returns one row per activation: ``fused_ms``/``unfused_ms`` (minimum over rounds),
    ``speedup`` = unfused / fused (median [lo, hi] over rounds, interleaved) and both compiled
    memories.
    """
    kind, kw, shape, opt, _ = NETWORKS["FashionNet (4.2)"]
    acts = ("relu",) if mode == "smoke" else ("relu", "cpaf_relu", "cpaf_sigmoid")
    repeats, iters = {"smoke": (1, 2), "quick": (5, 5), "full": (15, 10)}[mode]
    batch = _batch(kind, mode)
    runners = {}
    for a in acts:
        for fused in (True, False):
            runners[(a, fused)] = StepRunner(
                kind, a, batch, shape, opt, model_kwargs={**kw, "fuse_pooling": fused}
            )
    samples = interleaved_samples(runners, repeats=repeats, iters=iters, warmup=2)
    rows = []
    for a in acts:
        pair = {"fused": samples[(a, True)], "unfused": samples[(a, False)]}
        spread = ratio_spread(pair, "fused")["unfused"]
        mem = {f: runners[(a, f)].memory()["total"] for f in (True, False)}
        rows.append(
            {
                "network": "FashionNet (4.2)",
                "activation": a,
                "batch": batch,
                "fused_ms": min(pair["fused"]) * 1e3,
                "unfused_ms": min(pair["unfused"]) * 1e3,
                "speedup": spread["median"],
                "speedup_lo": spread["lo"],
                "speedup_hi": spread["hi"],
                "fused_memory": mem[True],
                "unfused_memory": mem[False],
            }
        )
    return rows


def run(mode: str) -> dict:
    """Returns ``{"rows": [{network, activation, batch, step_ms, ratio, memory, mem_ratio}],
    "fusion": fusion_rows(mode)}``.

    ``step_ms`` is the minimum over rounds; ``ratio`` the median over rounds of the per-round
    ratio to ReLU, with ``ratio_lo``/``ratio_hi`` its range.
    """
    nets = NETWORKS
    if mode == "smoke":
        nets = {"FashionNet (4.2)": NETWORKS["FashionNet (4.2)"][:4] + (("relu", "cpaf_sigmoid"),)}
    repeats, iters = {"smoke": (1, 2), "quick": (5, 5), "full": (15, 10)}[mode]
    rows = []
    for net, (kind, kw, shape, opt, acts) in nets.items():
        batch = _batch(kind, mode)
        runners = {a: StepRunner(kind, a, batch, shape, opt, model_kwargs=kw) for a in acts}
        it, rounds = (iters, repeats) if kind != "cifar" else (max(1, iters // 2), -(-repeats // 3))
        samples = interleaved_samples(runners, repeats=rounds, iters=it, warmup=2)
        t = {a: min(v) for a, v in samples.items()}
        spread = ratio_spread(samples, "relu")
        mem = {a: r.memory() for a, r in runners.items()}
        for a in acts:
            rows.append(
                {
                    "network": net,
                    "activation": a,
                    "batch": batch,
                    "optimizer": opt,
                    "step_ms": t[a] * 1e3,
                    "ratio": spread[a]["median"],
                    "ratio_lo": spread[a]["lo"],
                    "ratio_hi": spread[a]["hi"],
                    "rounds": spread[a]["rounds"],
                    "images_per_s": batch / t[a],
                    "memory": mem[a],
                    "mem_ratio": mem[a]["total"] / mem["relu"]["total"],
                    "temp_ratio": mem[a]["temp"] / max(mem["relu"]["temp"], 1),
                }
            )
        del runners
    return {"rows": rows, "fusion": fusion_rows(mode)}
