"""Self-describing checkpoints: a model spec saved with each checkpoint, and the way back.

``model_spec`` records what a model is (network kind, activation, sharing, model arguments, and
per activation layer its family's ``describe()`` and each parameter's initial value as
``initial_<name>``). ``restore_model`` rebuilds the network from that spec and loads the
checkpoint's parameters, with no config needed.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
from flax import nnx

from cpaf_jax.activations.family import Activation
from cpaf_jax.models import build_model
from cpaf_jax.training.checkpoints import Checkpointer
from cpaf_jax.training.state import merge_parts, split_model


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray | np.generic) or hasattr(x, "__array__"):
        return np.asarray(x).tolist()
    if isinstance(x, str | int | float | bool) or x is None:
        return x
    return None  # callables (initializers) cannot be stored; the saved values stand in


def model_spec(
    model: nnx.Module,
    *,
    kind: str,
    activation: str,
    seed: int = 0,
    sharing: Any = None,
    model_kwargs: dict | None = None,
    activation_kwargs: dict | None = None,
) -> dict:
    """A JSON-able description from which ``restore_model`` rebuilds ``model``.

    Args:
      model: the built model (its activation layers are described).
      kind, activation, seed, sharing, model_kwargs, activation_kwargs: the arguments it was
        built with by ``cpaf_jax.models.build_model``.
    """
    layers = {}
    kw = activation_kwargs or {}
    for path, node in nnx.iter_graph(model):
        if isinstance(node, Activation):
            info = dict(node.describe())
            defaults = node.record.initial_values(**dict(node.shape_options))
            for name in node.record.params:
                given = kw.get(f"{name}_init")
                info[f"initial_{name}"] = (
                    _jsonable(given) if given is not None else defaults[name].tolist()
                )
            layers["/".join(str(p) for p in path)] = _jsonable(info)
    return {
        "kind": kind,
        "activation": activation,
        "seed": seed,
        "sharing": _jsonable(sharing),
        "model_kwargs": _jsonable(model_kwargs or {}),
        "activation_kwargs": _jsonable(activation_kwargs or {}),
        "layers": layers,
    }


def build_from_spec(spec: dict) -> nnx.Module:
    """Builds the (untrained) network a spec describes."""
    sharing = spec.get("sharing")
    if isinstance(sharing, list):
        sharing = tuple(sharing)
    kwargs = dict(spec.get("model_kwargs") or {})
    if "input_shape" in kwargs:
        kwargs["input_shape"] = tuple(kwargs["input_shape"])
    act_kwargs = {k: v for k, v in (spec.get("activation_kwargs") or {}).items() if v is not None}
    if act_kwargs:
        kwargs["activation_kwargs"] = act_kwargs
    return build_model(
        spec["kind"], spec["activation"], seed=spec.get("seed", 0), sharing=sharing, **kwargs
    )


def restore_model(path: str | os.PathLike, epoch: int | None = None, member: int = 0) -> nnx.Module:
    """Restores a trained model from a run directory or its ``checkpoints`` folder.

    Args:
      path: an engine run's directory (``<out>/<activation>``, holding ``checkpoints/``) or
        the checkpoints folder itself.
      epoch: which epoch; the latest by default.
      member: which member of the run (checkpoints hold every member's state stacked).

    Returns:
      the model in evaluation mode (``model.eval()``).

    Raises:
      FileNotFoundError: no checkpoint there.
      ValueError: the checkpoint has no model spec, or no such member.
    """
    path = os.fspath(path)
    ckpt_dir = (
        os.path.join(path, "checkpoints")
        if os.path.isdir(os.path.join(path, "checkpoints"))
        else path
    )
    if not os.path.isdir(ckpt_dir):
        raise FileNotFoundError(f"no checkpoint in {ckpt_dir}")
    ckpt = Checkpointer(ckpt_dir)
    try:
        epoch = ckpt.latest_epoch() if epoch is None else epoch
        if epoch is None:
            raise FileNotFoundError(f"no checkpoint in {ckpt_dir}")
        meta = ckpt.read_meta(epoch)
        spec = meta.get("model", {}).get("spec")
        if not spec:
            raise ValueError(f"checkpoint {ckpt.path(epoch)} has no model spec to rebuild from")
        graphdef, params, rngs, others = split_model(build_from_spec(spec))
        like = (params, rngs, others)
        model = merge_parts(graphdef, *_member_arrays(ckpt, epoch, meta, like, member))
        model.eval()
        return model
    finally:
        ckpt.close()


def _member_arrays(ckpt, epoch: int, meta: dict, like, member: int):
    n = len(meta.get("members", []))
    if not 0 <= member < max(n, 1):
        raise ValueError(f"checkpoint {ckpt.path(epoch)} holds {n} member(s); no member {member}")
    if not n:  # one unstacked model (checkpoints of cpaf-jax before the engine)
        return ckpt.restore(epoch, like, item="model")[0]
    stacked = jax.tree.map(lambda x: np.zeros((n, *np.shape(x)), np.asarray(x).dtype), like)
    restored, _ = ckpt.restore(epoch, stacked, item="model")
    return jax.tree.map(lambda x: x[member], restored)
