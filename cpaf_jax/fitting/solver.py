"""A generic Levenberg-Marquardt least-squares solver, compiled once per problem shape.

``least_squares(model, sizes, xs, ys, starts, steps)`` fits ``model(xs, *params) ~ ys`` from
several starting points at once. It knows nothing about activation families: ``model`` is any
function of the grid and the parameters (``cpaf_jax.fitting.curve_fit`` passes a family's
``apply``).

How: Jacobian by forward mode (one ``jvp`` per parameter, the primal shared), Marquardt's
diagonal scaling with a small floor, damping adapted per step, a fixed number of steps under
``lax.scan``, the starts solved together under ``vmap``, all in one jit-compiled call on the
host CPU.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def unflatten(theta, sizes: tuple[tuple[int, ...], ...]) -> list:
    """Splits a flat parameter vector ``[n]`` into arrays of the given shapes."""
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


def _levenberg_marquardt(residual: Callable, steps: int):
    """``lm(theta0, xs, ys) -> (theta, max |r|, sum r^2)``: ``steps`` damped Gauss-Newton steps."""

    def residual_and_jac(theta, xs, ys):
        # jacfwd's pushforward of each basis vector, with the primal computed once and shared.
        def push(v):
            return jax.jvp(lambda t: residual(t, xs, ys), (theta,), (v,))

        eye = jnp.eye(theta.shape[0], dtype=theta.dtype)
        r, jt = jax.vmap(push, out_axes=(None, 0))(eye)
        return r, jt.T

    def lm(theta0, xs, ys):
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
        return theta, jnp.max(jnp.abs(residual(theta, xs, ys))), cur

    return lm


# The fit is a few thousand flops per step: XLA's backend optimisations cost more compile
# time than they save at run time (history: commit fb9d955), so the CPU compile skips them.
_CPU_COMPILER_OPTIONS = {"xla_backend_optimization_level": 0}


def _cpu_device():
    # The fit is tiny and latency-bound: always on the host, even where a GPU is the default.
    return jax.devices("cpu")[0]


@functools.lru_cache(maxsize=64)
def _compiled(
    model: Callable, sizes, steps: int, restarts: int, num_points: int, weighted: bool = False
):
    """``solve(xs, ys, starts) -> (thetas, max_errs, sq_errs)``, compiled for one shape.

    ``weighted``: ``ys`` is ``[2, num_points]``, the targets and the square roots of the
    sample weights; residuals are scaled by the latter (weighted least squares)."""

    def residual(theta, xs, ys):
        if weighted:
            return (model(xs, *unflatten(theta, sizes)) - ys[0]) * ys[1]
        return model(xs, *unflatten(theta, sizes)) - ys

    lm = _levenberg_marquardt(residual, steps)

    def solve(xs, ys, starts):
        return jax.vmap(lm, in_axes=(0, None, None))(starts, xs, ys)

    n = sum(int(np.prod(s)) for s in sizes)
    on_cpu = jax.sharding.SingleDeviceSharding(_cpu_device())
    args = (
        jax.ShapeDtypeStruct((num_points,), jnp.float32, sharding=on_cpu),
        jax.ShapeDtypeStruct(
            (2, num_points) if weighted else (num_points,), jnp.float32, sharding=on_cpu
        ),
        jax.ShapeDtypeStruct((restarts, n), jnp.float32, sharding=on_cpu),
    )
    lowered = jax.jit(solve).lower(*args)
    try:
        return lowered.compile(_CPU_COMPILER_OPTIONS)
    except Exception:  # noqa: BLE001 - an XLA build without the option: compile normally
        return lowered.compile()


def least_squares(
    model: Callable[..., Array],
    sizes: tuple[tuple[int, ...], ...],
    xs: np.ndarray,
    ys: np.ndarray,
    starts: np.ndarray,
    steps: int,
    weights: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Levenberg-Marquardt from every start; returns each start's result.

    Args:
      model: ``model(xs, *params) -> predictions`` of ``xs``'s shape, differentiable in forward
        mode; hashable (the compiled solver is cached per model and shape).
      sizes: the shape of each parameter (flattened into one vector, in this order).
      xs, ys: ``[num_points]`` float32 grid and targets.
      starts: ``[restarts, n]`` flat starting points, ``n = sum(prod(size))``.
      steps: iterations per start.
      weights: optional ``[num_points]`` sample weights >= 0: minimises
        ``sum(weights * residual**2)`` (weighted least squares); ``None``: all ones.

    Returns:
      ``thetas [restarts, n]``, ``max_errs [restarts]`` (largest ``|residual|``, weighted by
      ``sqrt(weights)`` when given) and ``sq_errs [restarts]`` (sum of (weighted) squared
      residuals), NumPy arrays.
    """
    weighted = weights is not None
    if weighted:
        w = np.asarray(weights, np.float64)
        if w.shape != np.shape(xs) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise ValueError("least_squares: weights must be finite, >= 0 and shaped like xs")
        ys = np.stack([np.asarray(ys, np.float32), np.sqrt(w).astype(np.float32)])
    solve = _compiled(
        model, tuple(sizes), int(steps), int(starts.shape[0]), int(np.shape(xs)[0]), weighted
    )
    cpu = _cpu_device()
    args = (np.asarray(v, np.float32) for v in (xs, ys, starts))
    thetas, max_errs, sq = solve(*(jax.device_put(v, cpu) for v in args))
    return np.asarray(thetas), np.asarray(max_errs), np.asarray(sq)
