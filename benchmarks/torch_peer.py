"""Section 5: FashionNet in PyTorch eager (NCHW), ReLU and a plain-PyTorch CPAF, trained with
``torch.optim.Adam``, side by side with the JAX step in the same run.

The network mirrors ``cpaf_jax.models.FashionNet``: 3x3 VALID convs 16-32-4, 2x2 max-pool
after the first two, dense 30, dense 10. CPAF's ``a``, ``b`` are per element, ``[*F, k]`` with
``F`` the NCHW feature shape, Table 1 initial values. Where ``torch.compile`` works (it
needs a C++ compiler) the compiled network is a further peer; otherwise ``compile`` says why
not. Torch is optional: without it the section reports ``available: false``.
"""

from __future__ import annotations

import os

import jax

from benchmarks.timing import interleaved_samples, ratio_spread
from benchmarks.train_step import StepRunner
from cpaf_jax import compile_options
from cpaf_jax.training import meshes as shd


def _torch_net(torch, activation: str):
    nn = torch.nn

    class CPAF(nn.Module):
        def __init__(self, features, base):
            super().__init__()
            a0, b0 = ((4.0, 4.0), (2.0, -2.0)) if base == "sigmoid" else ((1.0, 1.0), (1.0, -1.0))
            self.base = base
            self.a = nn.Parameter(torch.tensor(a0).expand(*features, 2).clone())
            self.b = nn.Parameter(torch.tensor(b0).expand(*features, 2).clone())

        def forward(self, y):
            z = 0
            for i in range(self.a.shape[-1]):
                u = y - self.b[..., i]
                f = torch.sigmoid(u) if self.base == "sigmoid" else torch.relu(u)
                z = z + self.a[..., i] * (f - 0.5)
            return z

    def act(features):
        if activation == "relu":
            return nn.ReLU()
        return CPAF(features, activation.removeprefix("cpaf_"))

    return nn.Sequential(
        nn.Conv2d(1, 16, 3),
        act((16, 26, 26)),
        nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3),
        act((32, 11, 11)),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 4, 3),
        act((4, 3, 3)),
        nn.Flatten(),
        nn.Linear(36, 30),
        act((30,)),
        nn.Linear(30, 10),
    )


def compile_status(torch) -> str | None:
    """``None`` if ``torch.compile`` (inductor, which builds C++ with the system compiler)
    compiles and runs a small function here, else why not, in one line."""
    try:
        f = torch.compile(lambda x: torch.relu(x) * 2 + 1)
        out = f(torch.randn(8))
        if tuple(out.shape) != (8,):
            return f"torch.compile returned shape {tuple(out.shape)} for (8,)"
    except Exception as e:  # no C++ compiler, no Python headers, unsupported platform...
        return f"torch.compile failed here: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
    return None


class _TorchStep:
    def __init__(self, torch, activation, batch, threads, compiled=False):
        torch.manual_seed(0)
        self.torch, self.threads = torch, threads
        self.net = _torch_net(torch, activation)
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.forward = torch.compile(self.net) if compiled else self.net
        self.x = torch.randn(8 * batch, 1, 28, 28)
        self.y = torch.randint(0, 10, (8 * batch,))
        self.idx = [torch.randint(0, 8 * batch, (batch,)) for _ in range(8)]
        self.loss = torch.nn.CrossEntropyLoss()
        self._i = 0

    def __call__(self):
        self._i += 1
        i = self.idx[self._i % 8]
        self.torch.set_num_threads(self.threads)
        self.opt.zero_grad(set_to_none=True)
        out = self.loss(self.forward(self.x[i]), self.y[i])
        out.backward()
        self.opt.step()
        return None


def run(mode: str) -> dict:
    """Returns ``{"available", "torch_threads", "rows": [{framework, activation, step_ms,
    ratio_to_jax_relu}]}``."""
    try:
        import torch
    except ImportError:
        return {"available": False, "rows": [], "compile": "torch is not installed"}
    threads = os.cpu_count() or 1
    compile_skipped = compile_status(torch)
    batch = 32 if mode == "smoke" else 128
    acts = ("relu",) if mode == "smoke" else ("relu", "cpaf_relu", "cpaf_sigmoid")
    fns = {}
    devices = jax.local_devices()
    # The engine's data_parallel strategy, one CPU device per core (python -m train makes them).
    mesh = shd.data_mesh(devices) if len(devices) > 1 and batch % len(devices) == 0 else None
    for a in acts:
        fns[("jax", a)] = StepRunner("fashion_mnist", a, batch, (28, 28, 1), "adam")
        if compile_options.compiler_options() is not None:
            # What the same step costs with XLA:CPU's defaults (YNN fusions on).
            fns[("jax, XLA defaults", a)] = StepRunner(
                "fashion_mnist", a, batch, (28, 28, 1), "adam", xla_defaults=True
            )
        if mesh is not None:
            fns[(f"jax, batch split over {len(devices)} CPU devices", a)] = StepRunner(
                "fashion_mnist", a, batch, (28, 28, 1), "adam", mesh=mesh
            )
        fns[(f"torch {threads} threads", a)] = _TorchStep(torch, a, batch, threads)
        if compile_skipped is None:
            fns[(f"torch.compile {threads} threads", a)] = _TorchStep(
                torch, a, batch, threads, compiled=True
            )
        if threads > 1 and a == "relu":
            # On a shared machine torch's thread pool suffers most from contention.
            fns[("torch 1 thread", a)] = _TorchStep(torch, a, batch, 1)
    repeats, iters = {"smoke": (1, 2), "quick": (5, 5), "full": (15, 10)}[mode]
    samples = interleaved_samples(fns, repeats=repeats, iters=iters, warmup=2)
    spread = ratio_spread(samples, ("jax", "relu"))
    rows = [
        {
            "framework": fw,
            "activation": a,
            "batch": batch,
            "step_ms": min(v) * 1e3,
            "ratio_to_jax_relu": spread[(fw, a)]["median"],
            "ratio_lo": spread[(fw, a)]["lo"],
            "ratio_hi": spread[(fw, a)]["hi"],
            "rounds": spread[(fw, a)]["rounds"],
        }
        for (fw, a), v in samples.items()
    ]
    torch.set_num_threads(threads)
    return {
        "available": True,
        "torch_version": torch.__version__,
        "torch_threads": threads,
        "compile": compile_skipped or "ok",
        "rows": rows,
    }
