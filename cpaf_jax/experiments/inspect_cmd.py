"""``python -m train inspect RUN_DIR``: a trained model's activations, per layer.

Restores the model from its self-describing checkpoint (no config needed), prints each
parametric activation layer's parameter statistics, and plots the learned curves against the
initial one (``RUN_DIR/inspect_shapes.png``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from cpaf_jax.activations.family import unit_params
from cpaf_jax.experiments import plots
from cpaf_jax.experiments.inspect_model import activation_layers, learned_curves


def _stats(column: np.ndarray) -> dict:
    return {
        "mean": float(column.mean()),
        "std": float(column.std()),
        "min": float(column.min()),
        "max": float(column.max()),
    }


def layer_stats(model) -> dict[str, dict]:
    """Per parametric activation layer: its ``describe()`` and, per parameter, statistics of
    each coefficient over the layer's units (``a1``, ``a2``... for CPAF; one for ``alpha``)."""
    out = {}
    for name, layer in activation_layers(model).items():
        info = dict(layer.describe())
        values = unit_params(layer)
        info["params"] = {
            pname: [_stats(c) for c in v.reshape(len(v), -1).T]
            for pname, v in zip(layer.record.params, values, strict=True)
        }
        out[name] = info
    return out


def main(argv: list[str]) -> int:
    """``python -m train inspect RUN_DIR [options]``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="cpaf-train inspect",
        description="Summarise a trained model's activations, per layer: restores the model "
        "from its checkpoint alone, prints each parametric activation layer's parameter "
        "statistics and plots the learned curves against the initial one "
        "(RUN_DIR/inspect_shapes.png).",
    )
    p.add_argument("run_dir", help="a run's folder (e.g. runs/fashion_mnist/cpaf_relu)")
    p.add_argument("--epoch", type=int, help="checkpoint epoch (default: the last)")
    p.add_argument("--json", action="store_true", help="print the statistics as JSON")
    args = p.parse_args(argv)
    if not os.path.isdir(args.run_dir):  # checked first: restoring would create the folder
        print(f"error: run folder {args.run_dir!r} does not exist", file=sys.stderr)
        return 2
    from cpaf_jax.experiments.restore import restore_model

    try:
        model = restore_model(args.run_dir, args.epoch)
    except (FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    stats = layer_stats(model)
    if args.json:
        print(json.dumps(stats, indent=1))
    else:
        for name, info in stats.items():
            print(
                f"{name}: {info['family']} sharing={info.get('sharing')} "
                f"params={info.get('param_shape')}"
            )
            for pname, terms in info["params"].items():
                for i, t in enumerate(terms):
                    print(
                        f"    {pname}{i + 1}: mean {t['mean']:+.4f} std {t['std']:.4f} "
                        f"range [{t['min']:+.4f}, {t['max']:+.4f}]"
                    )
    curves = learned_curves(model)
    if curves and plots.available():
        path = os.path.join(args.run_dir, "inspect_shapes.png")
        plots.activation_shapes(curves, path, "learned activations vs initial")
        print(f"plot: {path}")
    return 0
