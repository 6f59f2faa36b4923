"""Fit-to-target initialisation: the parameters of a trainable activation that best match a
given function on an interval.

    res = cpaf_jax.fitting.curve_fit.fit("tanh", k=4, base="sigmoid")          # CPAF-sigmoid ~ tanh
    a, b = cpaf_jax.fitting.curve_fit.fit_initializer("tanh", k=4, base="sigmoid")
    act = cpaf_jax.CPAF((30,), k=4, base="sigmoid", a_init=a, b_init=b)

How: least squares on ``num_points`` evenly spaced points of ``interval``, solved by
Levenberg-Marquardt (Jacobian by ``jax.jacfwd``, Marquardt's diagonal scaling, damping
adapted per step) for a fixed number of steps under ``lax.scan``, from ``restarts`` starting
points at once under ``vmap``, all in one jit-compiled call. The start with the smallest maximum
error on the grid wins. The first start is always the family's default initialisation, so the
fit is never worse on the grid than the default. Compiled solvers are cached per (family,
base, size, grid size, steps, restarts): a second fit of the same shape costs milliseconds,
whatever the target or interval.

Families: ``"cpaf"`` (with ``base``; also ``"cpaf_sigmoid"``, ``"cpaf_relu"``, ``"cpaf_tanh"``),
``"apl"``, ``"pau"``, ``"swish"``, ``"prelu"``. Targets: a name in ``TARGETS`` or any
elementwise callable (called once on the grid, as a JAX array; NumPy functions work too).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from cpaf_jax.activations import extra as ea
from cpaf_jax.activations.initializers import default_terms
from cpaf_jax.activations.modules import prelu
from cpaf_jax.ops.bases import Base, resolve_base
from cpaf_jax.ops.functional import cpaf

Array = jax.Array

TARGETS: dict[str, Callable[[Array], Array]] = {
    "relu": jax.nn.relu,
    # The exact (erf) GELU, as PyTorch's default; jax.nn.gelu defaults to the tanh approximation.
    "gelu": lambda x: jax.nn.gelu(x, approximate=False),
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "elu": jax.nn.elu,
    # Slope 0.01: jax.nn.leaky_relu's default and the PAU paper's initial shape.
    "leaky_relu": lambda x: jax.nn.leaky_relu(x, ea.PAU_LEAKY_SLOPE),
    "silu": jax.nn.silu,
    "swish": jax.nn.silu,
    "softplus": jax.nn.softplus,
}

FAMILIES = ("cpaf", "apl", "pau", "swish", "prelu")


@dataclasses.dataclass(frozen=True)
class FitResult:
    """The outcome of ``fit``.

    Attributes:
      family: ``"cpaf"``, ``"apl"``, ``"pau"``, ``"swish"`` or ``"prelu"``.
      params: parameter name -> float32 NumPy array, unshared: ``{"a": (k,), "b": (k,)}`` for
        CPAF and APL, ``{"p": (m+1,), "q": (n,)}`` for PAU, ``{"beta": ()}``, ``{"alpha": ()}``.
      max_error: largest ``|fitted - target|`` on the fitting grid.
      rms_error: root mean square of the same.
      base: the CPAF base name (``None`` for other families).
      interval: the fitted interval.
    """

    family: str
    params: dict[str, np.ndarray]
    max_error: float
    rms_error: float
    base: str | None = None
    interval: tuple[float, float] = (-3.0, 3.0)
    _base_obj: Base | None = dataclasses.field(default=None, repr=False, compare=False)

    def init_kwargs(self) -> dict[str, np.ndarray]:
        """Initial values as module keyword arguments, e.g. ``{"a_init": a, "b_init": b}``;
        ``CPAF(shape, k=k, base=base, **res.init_kwargs())`` starts from the fitted curve."""
        return {f"{name}_init": value for name, value in self.params.items()}

    def __call__(self, x) -> Array:
        """The fitted curve at ``x`` (any shape), with the parameters shared over ``x``."""
        spec = _family_spec(self.family, self._base_obj)
        return spec.model(jnp.asarray(x), *(jnp.asarray(v) for v in self.params.values()))


# --------------------------------------------------------------------------------------------
# Families: how to evaluate and where to start.


@dataclasses.dataclass(frozen=True)
class _Spec:
    names: tuple[str, ...]
    model: Callable  # model(x, *params) -> y, params unshared
    default: Callable  # default(size) -> tuple of NumPy arrays, the module's default init


def _cpaf_model(base: Base):
    def model(x, a, b):
        # The custom-VJP implementation has no forward-mode rule; jacfwd needs the plain one.
        return cpaf(x, a, b, base, implementation="unrolled")

    return model


def _family_spec(family: str, base: Base | None) -> _Spec:
    if family == "cpaf":
        return _Spec(("a", "b"), _cpaf_model(base), lambda k: default_terms(base, k))
    if family == "apl":
        return _Spec(("a", "b"), ea.apl, ea.apl_default_init)
    if family == "pau":
        return _Spec(("p", "q"), ea.pau, ea.pau_default_init)
    if family == "swish":
        return _Spec(("beta",), ea.swish, lambda _: (np.asarray(ea.SWISH_BETA_INIT),))
    if family == "prelu":
        return _Spec(("alpha",), prelu, lambda _: (np.asarray(0.25),))
    raise ValueError(f"fit: unknown family {family!r}; choose one of {FAMILIES}")


def _resolve_family(family: str, base) -> tuple[str, Base | None]:
    if not isinstance(family, str):
        raise ValueError(f"fit: family must be a name, one of {FAMILIES}; got {family!r}")
    if family.startswith("cpaf_"):
        return "cpaf", resolve_base(family[len("cpaf_") :])
    if family == "cpaf":
        return "cpaf", resolve_base(base)
    _family_spec(family, None)  # raises for unknown names
    return family, None


def _sizes(family: str, k: int, degrees) -> tuple[tuple[int, ...], ...]:
    if family in ("cpaf", "apl"):
        if not isinstance(k, int | np.integer) or k < 1:
            raise ValueError(f"fit: k must be an integer >= 1, got {k!r}")
        return ((int(k),), (int(k),))
    if family == "pau":
        m, n = ea._check_degrees(degrees)
        return ((m + 1,), (n,))
    return ((),)


def _starts(family, base, sizes, default, interval, restarts, seed) -> np.ndarray:
    """``[restarts, n]`` flat starting points; row 0 is the family's default initialisation."""
    lo, hi = interval
    width = hi - lo
    rng = np.random.default_rng(seed)
    n = sum(int(np.prod(s)) for s in sizes)
    out = np.empty((restarts, n))
    out[0] = np.concatenate([np.ravel(v) for v in default])
    for r in range(1, restarts):
        if family in ("cpaf", "apl"):
            k = sizes[0][0]
            # Locations over (a bit beyond) the interval: a term parked outside acts as a
            # constant (CPAF) or a linear piece (APL), which some targets need. Start 1 spreads
            # them evenly; later ones draw them. Scales start at 0: the first Levenberg-Marquardt
            # step then solves the (linear) least-squares problem in a for those locations.
            if r == 1:
                b = np.linspace(lo, hi, k + 2)[1:-1]
            else:
                b = np.sort(rng.uniform(lo - 0.25 * width, hi + 0.25 * width, k))
            a = np.zeros(k) if r % 2 else rng.normal(0.0, 1.0, k)
            out[r] = np.concatenate([a, b])
        elif family == "pau":
            (m1,), (nq,) = sizes
            p = np.zeros(m1)
            q = rng.uniform(0.0, 1.0, nq) * 10.0 ** rng.uniform(-2, 0.5, nq)
            out[r] = np.concatenate([p, q])
        else:
            out[r] = rng.uniform(0.0, 2.0, n) if family == "swish" else rng.uniform(-0.5, 1.0, n)
    return out


# --------------------------------------------------------------------------------------------
# The solver.


def _unflatten(theta: Array, sizes) -> list[Array]:
    out, i = [], 0
    for s in sizes:
        size = int(np.prod(s))
        out.append(theta[i : i + size].reshape(s))
        i += size
    return out


def _spd_solve(a: Array, rhs: Array) -> Array:
    """Solves ``a x = rhs`` for a small symmetric positive definite ``a`` by Gauss-Jordan
    elimination without pivoting (stable enough for SPD; a bad step is rejected by the loss
    check anyway). Far cheaper to trace and compile than ``jnp.linalg.solve``, which matters
    here because compile time dominates a fit."""

    def body(i, carry):
        a, rhs = carry
        piv = a[i, i]
        row = a[i] / piv
        ri = rhs[i] / piv
        factor = a[:, i].at[i].set(0.0)
        a = a - factor[:, None] * row[None, :]
        rhs = rhs - factor * ri
        return a.at[i].set(row), rhs.at[i].set(ri)

    return jax.lax.fori_loop(0, a.shape[0], body, (a, rhs))[1]


# The fit is a few thousand flops per step: XLA's backend optimisations cost more compile
# time than they save at run time (history: commit fb9d955), so the CPU compile skips them.
_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def _cpu_device():
    # The fit is tiny and latency-bound: always on the host, even where a GPU is the default.
    return jax.devices("cpu")[0]


@functools.lru_cache(maxsize=64)
def _solver(family: str, base: Base | None, sizes, steps: int, restarts: int, num_points: int):
    """Compiled ``solve(xs, ys, starts) -> (thetas, max_errs, sq_errs)`` for one problem shape.

    Levenberg-Marquardt from each start (vmapped), ``steps`` iterations under ``lax.scan``.
    """
    model = _family_spec(family, base).model

    def residual(theta, xs, ys):
        return model(xs, *_unflatten(theta, sizes)) - ys

    def residual_and_jac(theta, xs, ys):
        # jacfwd's pushforward of each basis vector, with the primal computed once and shared.
        def push(v):
            return jax.jvp(lambda t: residual(t, xs, ys), (theta,), (v,))

        eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
        r, jt = jax.vmap(push, out_axes=(None, 0))(eye)
        return r, jt.T

    def lm_one(theta0, xs, ys):
        def loss(theta):
            r = residual(theta, xs, ys)
            v = jnp.sum(r * r)
            return jnp.where(jnp.isfinite(v), v, jnp.inf)

        def step(carry, _):
            theta, lam, cur = carry
            r, jm = residual_and_jac(theta, xs, ys)
            h = jm.T @ jm
            g = jm.T @ r
            d = jnp.diag(h)
            # Marquardt scaling by diag(H), plus a floor so directions with no curvature yet
            # (e.g. CPAF locations while all scales are 0) stay solvable.
            floor = 1e-6 * (jnp.max(d) + 1e-12)
            delta = _spd_solve(h + lam * jnp.diag(d + floor), -g)
            cand = theta + delta
            new = loss(cand)
            ok = (new < cur) & jnp.all(jnp.isfinite(delta))
            theta = jnp.where(ok, cand, theta)
            cur = jnp.where(ok, new, cur)
            lam = jnp.clip(jnp.where(ok, lam * 0.3, lam * 4.0), 1e-9, 1e9)
            return (theta, lam, cur), None

        init = (theta0, jnp.asarray(1e-3, theta0.dtype), loss(theta0))
        (theta, _, cur), _ = jax.lax.scan(step, init, None, length=steps)
        r = residual(theta, xs, ys)
        return theta, jnp.max(jnp.abs(r)), cur

    def solve(xs, ys, starts):
        return jax.vmap(lm_one, in_axes=(0, None, None))(starts, xs, ys)

    n = sum(int(np.prod(s)) for s in sizes)
    cpu = _cpu_device()
    args = (
        jax.ShapeDtypeStruct((num_points,), jnp.float32, sharding=_single(cpu)),
        jax.ShapeDtypeStruct((num_points,), jnp.float32, sharding=_single(cpu)),
        jax.ShapeDtypeStruct((restarts, n), jnp.float32, sharding=_single(cpu)),
    )
    lowered = jax.jit(solve).lower(*args)
    try:
        return lowered.compile(_CPU_COMPILER_OPTIONS)
    except Exception:  # noqa: BLE001 - an XLA build without the option: compile normally
        return lowered.compile()


def _single(device):
    return jax.sharding.SingleDeviceSharding(device)


def _target_values(target, xs: np.ndarray) -> np.ndarray:
    if isinstance(target, str):
        try:
            fn = TARGETS[target]
        except KeyError:
            raise ValueError(
                f"fit: unknown target {target!r}; known targets are {sorted(TARGETS)}, or pass "
                "any elementwise callable"
            ) from None
    elif callable(target):
        fn = target
    else:
        raise TypeError(f"fit: target must be a name or a callable, got {type(target).__name__}")
    ys = np.asarray(fn(jnp.asarray(xs)), dtype=np.float32)
    if ys.shape != xs.shape:
        raise ValueError(
            f"fit: target must be elementwise; on an input of shape {xs.shape} it returned "
            f"shape {ys.shape}"
        )
    if not np.all(np.isfinite(ys)):
        raise ValueError("fit: the target is not finite everywhere on the interval")
    return ys


def fit(
    target: str | Callable[[Array], Array],
    k: int = 4,
    base: str | Base | Callable = "sigmoid",
    interval: tuple[float, float] = (-3.0, 3.0),
    *,
    family: str = "cpaf",
    degrees: tuple[int, int] = ea.PAU_DEFAULT_DEGREES,
    num_points: int = 512,
    steps: int = 150,
    restarts: int = 12,
    seed: int = 0,
) -> FitResult:
    """Least-squares fit of a parametric activation to ``target`` on ``interval``.

    Args:
      target: a name in ``TARGETS`` (``"relu"``, ``"gelu"`` (exact erf form), ``"tanh"``,
        ``"sigmoid"``, ``"elu"``, ``"leaky_relu"`` (slope 0.01), ``"silu"``/``"swish"``,
        ``"softplus"``) or an elementwise callable.
      k: number of terms (CPAF) or hinges (APL); ignored by other families.
      base: CPAF base (``"sigmoid"``, ``"relu"``, ``"tanh"``, a ``Base`` or callable).
      interval: ``(lo, hi)``, ``lo < hi``.
      family: ``"cpaf"``, ``"cpaf_sigmoid"``, ``"cpaf_relu"``, ``"cpaf_tanh"``, ``"apl"``,
        ``"pau"``, ``"swish"`` or ``"prelu"``.
      degrees: PAU's ``(m, n)``.
      num_points: grid size (float32, endpoints included).
      steps: Levenberg-Marquardt steps per start.
      restarts: number of starting points, solved together under ``vmap``; the first is the
        family's default initialisation.
      seed: for the random starting points.

    Returns:
      ``FitResult`` with unshared parameters (shape ``(k,)`` each for CPAF and APL) and the
      max and rms error on the grid.

    Raises:
      ValueError: unknown target or family, bad interval, k, degrees or grid size.
    """
    fam, base_obj = _resolve_family(family, base)
    lo, hi = (float(v) for v in interval)
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise ValueError(f"fit: interval must be finite with lo < hi, got {interval!r}")
    sizes = _sizes(fam, k, degrees)
    n = sum(int(np.prod(s)) for s in sizes)
    if num_points < max(n, 2):
        raise ValueError(f"fit: num_points={num_points} is fewer than the {n} parameters")
    if restarts < 1 or steps < 1:
        raise ValueError(f"fit: restarts and steps must be >= 1, got {restarts}, {steps}")
    spec = _family_spec(fam, base_obj)
    xs = np.linspace(lo, hi, num_points, dtype=np.float32)
    ys = _target_values(target, xs)
    if fam == "pau":
        default = _pau_default_or_zero((sizes[0][0] - 1, sizes[1][0]))
    else:
        default = spec.default(sizes[0][0] if sizes[0] else None)
    starts = _starts(fam, base_obj, sizes, default, (lo, hi), restarts, seed).astype(np.float32)
    solve = _solver(fam, base_obj, sizes, int(steps), int(restarts), int(num_points))
    cpu = _cpu_device()
    thetas, max_errs, sq = solve(*(jax.device_put(v, cpu) for v in (xs, ys, starts)))
    max_errs = np.asarray(max_errs)
    best = int(np.nanargmin(np.where(np.isfinite(max_errs), max_errs, np.inf)))
    theta = np.asarray(thetas[best], np.float32)
    params = {
        name: np.asarray(v) for name, v in zip(spec.names, _unflatten(theta, sizes), strict=True)
    }
    return FitResult(
        family=fam,
        params=params,
        max_error=float(max_errs[best]),
        rms_error=float(np.sqrt(np.asarray(sq)[best] / num_points)),
        base=base_obj.name if base_obj is not None else None,
        interval=(lo, hi),
        _base_obj=base_obj,
    )


def _pau_default_or_zero(degrees):
    # The published (5, 4) leaky-ReLU coefficients are a good first start; other degrees have
    # no published fit (and computing one here would recurse), so they start from P = x.
    m, n = degrees
    if (m, n) == ea.PAU_DEFAULT_DEGREES:
        return ea.pau_default_init((m, n))
    p = np.zeros(m + 1)
    if m >= 1:
        p[1] = 1.0
    return p, np.full(n, 0.1)


def fit_initializer(
    target: str | Callable[[Array], Array],
    k: int = 4,
    base: str | Base | Callable = "sigmoid",
    interval: tuple[float, float] = (-3.0, 3.0),
    *,
    family: str = "cpaf",
    **kwargs,
) -> tuple[np.ndarray, ...]:
    """Fitted initial values in the module's argument order, to pass as ``*_init``.

    ``(a_init, b_init)`` (shape ``(k,)`` each) for CPAF and APL, ``(p_init, q_init)`` for PAU,
    ``(beta_init,)`` for Swish, ``(alpha_init,)`` for PReLU. Each broadcasts over any sharing,
    so every activation of the layer starts from the fitted curve::

        a, b = fit_initializer("tanh", k=4, base="sigmoid")
        act = cpaf_jax.CPAF((26, 26, 16), k=4, base="sigmoid", a_init=a, b_init=b)

    Arguments are those of ``fit``. The fit's errors are not returned; call ``fit`` to see them.
    """
    res = fit(target, k, base, interval, family=family, **kwargs)
    return tuple(res.params.values())


__all__ = ["FAMILIES", "FitResult", "TARGETS", "fit", "fit_initializer"]
