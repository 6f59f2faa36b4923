"""Inputs of a custom VJP made varying over the same ``jax.shard_map`` axes.

Inside ``jax.shard_map`` (with its default ``check_vma=True``) every value has a type that says
over which manual mesh axes it varies. A custom VJP's backward rule must return each cotangent
with its primal's type, but the cotangent of a parameter replicated over a batch-split mesh
(unvarying) is a sum over the local batch (varying): JAX rejects it. Casting every input to the
union of the inputs' varying axes before the custom VJP moves that cast outside the rule; its
transpose, the ``psum`` of the parameter cotangents over the devices, is then JAX's own.
"""

from __future__ import annotations

import jax


def _vma(x) -> frozenset:
    aval = jax.typeof(x)
    manual = getattr(aval, "manual_axis_type", None)  # jax >= 0.9; before: ``aval.vma``
    return frozenset(manual.varying if manual is not None else getattr(aval, "vma", ()))


def match_vma(*xs: jax.Array) -> tuple[jax.Array, ...]:
    """``xs`` cast to vary over every manual axis any of them varies over.

    Args:
      *xs: arrays of any shapes and dtypes (``y``, ``a``, ``b``, a bias...).

    Returns:
      the same arrays, shapes and dtypes unchanged; only their varying-axis type differs, and
      only inside ``shard_map`` with ``check_vma=True`` on a JAX that has such types.
    """
    if not hasattr(jax, "typeof") or not hasattr(jax.lax, "pcast"):
        return xs
    union = frozenset().union(*(_vma(x) for x in xs))
    if not union:
        return xs
    return tuple(
        jax.lax.pcast(x, tuple(sorted(union - _vma(x))), to="varying") if union - _vma(x) else x
        for x in xs
    )


def inside_shard_map() -> bool:
    """Whether tracing is inside ``jax.shard_map`` (the abstract mesh has manual axes).

    Custom calls (``cpaf_jax.ops.cpu_kernel``) carry no varying-axis types there, so callers
    use their pure-JAX path instead.
    """
    get = getattr(jax.sharding, "get_abstract_mesh", None)
    return bool(get is not None and getattr(get(), "manual_axes", ()))
