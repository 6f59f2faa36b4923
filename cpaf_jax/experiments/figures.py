"""Which PNG figures an experiment makes from its runs and trained models (``plots`` draws)."""

from __future__ import annotations

import os

from cpaf_jax.experiments import plots
from cpaf_jax.experiments.inspect_model import ab_pairs, feature_points, learned_curves

DATASET_NAMES = {
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
}


def plot_title(cfg, dataset: str) -> str:
    """``"4.2 network, Fashion-MNIST"``; with the CIFAR structure where there is one."""
    structure = cfg.model_kwargs.get("structure")
    network = f"{cfg.section} network" + (f" (structure {structure})" if structure else "")
    return f"{network}, {DATASET_NAMES.get(dataset, dataset)}"


def _curves(cfg, runs: list[dict], data, out: str) -> list[str]:
    if not any(r["curve"] for r in runs):
        return []
    title = plot_title(cfg, data.name)
    return [
        plots.loss_curves(runs, os.path.join(out, "test_loss.png"), f"Test loss, {title}"),
        plots.accuracy_curves(
            runs, os.path.join(out, "test_accuracy.png"), f"Test accuracy, {title}"
        ),
    ]


def _model_figures(cfg, models: dict, data, out: str) -> list[str]:
    made = []
    if cfg.model == "mnist_features" and models:
        feats = {
            act: feature_points(m, data.test_images, data.test_labels) for act, m in models.items()
        }
        made.append(plots.feature_scatter(feats, os.path.join(out, "features_2d.png")))
    for act, m in models.items():
        pairs = ab_pairs(m)
        if pairs:
            path = os.path.join(out, f"ab_scatter_{act}.png")
            made.append(
                plots.ab_scatter(
                    pairs, path, f"Learned (a, b) of {act}, {plot_title(cfg, data.name)}"
                )
            )
        curves = learned_curves(m)
        if curves:
            path = os.path.join(out, f"shapes_{act}.png")
            title = f"{act}: learned curves against the initial one, {plot_title(cfg, data.name)}"
            made.append(plots.activation_shapes(curves, path, title))
    return made


def _trajectories(runs: list[dict], out: str) -> list[str]:
    made = []
    for act in dict.fromkeys(r["activation"] for r in runs):
        traj = next(
            (r["trajectory"] for r in runs if r["activation"] == act and r.get("trajectory")), None
        )
        if traj:
            path = os.path.join(out, f"trajectory_{act}.png")
            made.append(plots.trajectories(traj, path, f"{act}: activation parameters in training"))
    return made


def _ab_grids(runs: list[dict], out: str) -> list[str]:
    made = []
    grid = [r for r in runs if r.get("init_a") is not None and r.get("test_accuracy") is not None]
    for act in dict.fromkeys(r["activation"] for r in grid):
        cells: dict[tuple[float, float], list[float]] = {}
        for r in grid:
            if r["activation"] == act:
                cells.setdefault((r["init_a"][0], r["init_b"][0]), []).append(r["test_accuracy"])
        points = [(a, b, sum(v) / len(v)) for (a, b), v in cells.items()]
        path = os.path.join(out, f"ab_grid_{act}.png")
        made.append(plots.accuracy_grid(points, path, f"{act}: test accuracy over initial (a, b1)"))
    return made


def make_plots(cfg, results: dict, models: dict, data, out: str) -> list[str]:
    """Writes the experiment's PNGs into ``out``; returns their file names.

    Args:
      cfg: the experiment config; results: ``results.json``'s dict (its ``runs``).
      models: activation -> one trained NNX model of it (the first member).
      data: the dataset (test images for the 2-D feature scatter of 4.1).
    """
    runs = results["runs"]
    made = _curves(cfg, runs, data, out)
    made += _model_figures(cfg, models, data, out)
    made += _trajectories(runs, out)
    made += _ab_grids(runs, out)
    return [os.path.basename(p) for p in made]
