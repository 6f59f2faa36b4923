"""The paper's figures from our runs: loss and accuracy curves (Fig. 10/13/15), the 2-D
feature scatter (Fig. 11), the learned (a, b) scatter (Fig. 14) and learned activation shapes
(Fig. 6 style).

Every function takes plain data (records, arrays, models) and writes one PNG. matplotlib is
the ``[plots]`` extra, imported only when a plot is drawn (with the Agg backend, so a headless
machine needs no display). Callers ask :func:`available` first: without matplotlib it prints
one line saying how to get the plots and returns False, and the run's other outputs are
written as usual; a plot function called anyway raises :class:`PlotsUnavailable`.
"""

from __future__ import annotations

import os
import sys
from collections import defaultdict
from typing import TextIO

import numpy as np

# The extra's name for an installed package; plain matplotlib serves a checkout just as well.
INSTALL_HINT = 'pip install "cpaf-jax[plots]" (or pip install matplotlib)'


class PlotsUnavailable(ImportError):
    """matplotlib (the ``[plots]`` extra) is not installed."""


def _plt():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise PlotsUnavailable(
            f"plots need matplotlib, which is not installed ({e}); {INSTALL_HINT}"
        ) from e
    return plt


def available(*, explain: bool = True, file: TextIO | None = None) -> bool:
    """Whether the plots can be drawn, i.e. matplotlib imports.

    Args:
      explain: when matplotlib is missing, print one line saying the plots are skipped and
        how to get them.
      file: where that line goes (default ``sys.stderr``).

    Returns:
      True when matplotlib imports; False otherwise (after the line, if ``explain``).
    """
    try:
        _plt()
    except PlotsUnavailable:
        if explain:
            print(
                f"plots skipped: matplotlib is not installed; to get them: {INSTALL_HINT}",
                file=sys.stderr if file is None else file,
            )
        return False
    return True


def _seed_curves(runs: list[dict], key: str, scale: float, ylabel: str, path: str, title: str):
    """One colour per activation, one line per seed, from ``run[key]`` = ``[[step, value]]``."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    colors = {}
    for run in runs:
        act = run["activation"]
        if act not in colors:
            colors[act] = f"C{len(colors)}"
        curve = np.asarray(run.get(key) or [], float)
        if curve.size == 0:
            continue
        ax.plot(
            curve[:, 0],
            curve[:, 1] * scale,
            color=colors[act],
            alpha=0.9 if run["seed"] == runs[0]["seed"] else 0.35,
            lw=1.2,
            label=act
            if run["seed"] == min(r["seed"] for r in runs if r["activation"] == act)
            else None,
        )
    ax.set_xlabel("training step")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def loss_curves(runs: list[dict], path: str, title: str) -> str:
    """Test loss against training step, one colour per activation, one line per seed.

    Args:
      runs: entries with ``activation``, ``seed`` and ``curve`` = list of ``[step, test_loss]``.
    """
    return _seed_curves(runs, "curve", 1.0, "test loss", path, title)


def accuracy_curves(runs: list[dict], path: str, title: str) -> str:
    """Test accuracy (%) against training step, the companion of :func:`loss_curves`.

    Args:
      runs: entries with ``activation``, ``seed`` and ``acc_curve`` = list of
        ``[step, test_accuracy]`` with accuracy a fraction in [0, 1] (plotted in percent).
    """
    return _seed_curves(runs, "acc_curve", 100.0, "test accuracy (%)", path, title)


def feature_scatter(features: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> str:
    """Fig. 11: the 2-D features ``[z1, z2]`` of test images, one panel per activation.

    Args:
      features: activation -> (``[n, 2]`` features, ``[n]`` labels).
    """
    plt = _plt()
    n = len(features)
    fig, axes = plt.subplots(1, n, figsize=(3.4 * n, 3.4), squeeze=False)
    for ax, (act, (z, y)) in zip(axes[0], features.items(), strict=True):
        for c in range(int(y.max()) + 1):
            sel = y == c
            ax.scatter(z[sel, 0], z[sel, 1], s=3, alpha=0.6, label=str(c), color=f"C{c % 10}")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set_title(act)
        ax.set_xlabel("z1")
        ax.set_ylabel("z2")
    axes[0][-1].legend(markerscale=4, fontsize=7, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def ab_scatter(pairs: dict[str, np.ndarray], path: str, title: str) -> str:
    """Fig. 14: learned (a_i, b_i) of every CPAF activation element, one colour per term.

    Args:
      pairs: layer name -> ``[n, k, 2]`` array of (a, b) per element and term.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    by_term = defaultdict(list)
    for arr in pairs.values():
        for i in range(arr.shape[1]):
            by_term[i].append(arr[:, i, :])
    total = sum(arr.shape[0] for arr in pairs.values())
    for i, chunks in sorted(by_term.items()):
        ab = np.concatenate(chunks)
        ax.scatter(ab[:, 0], ab[:, 1], s=2, alpha=0.3, label=f"(a{i + 1}, b{i + 1})")
    ax.set_xlabel("a")
    ax.set_ylabel("b")
    ax.set_title(f"{title}\n{total:,} (a1, b1) pairs")
    ax.grid(alpha=0.3)
    ax.legend(markerscale=5)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def activation_shapes(
    curves: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]], path: str, title: str
) -> str:
    """Fig. 6 style: learned activation curves of some elements against the initial curve.

    One panel per layer, titled by the layer's name, with axis labels and a legend entry for
    the learned curves (one line per sampled unit) and the initial curve.

    Args:
      curves: layer name -> (``[m]`` inputs, ``[m]`` initial curve, ``[e, m]`` learned curves).
      path: the PNG to write.
      title: the figure's title.
    """
    plt = _plt()
    n = len(curves)
    cols = 2 if n == 4 else min(n, 3)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.4 * cols, 3.6 * rows + 0.6), squeeze=False)
    for ax, (layer, (y, init, learned)) in zip(axes.flat, curves.items(), strict=False):
        for row in learned:
            ax.plot(y, row, color="C0", alpha=0.35, lw=1.2)
        # Drawn over the learned curves, thin and dashed, so a curve that barely moved shows.
        ax.plot(y, init, color="k", lw=1.3, ls="--", label="initial")
        # An opaque legend entry for the learned curves (each is drawn faint).
        ax.plot([], [], color="C0", lw=1.6, label=f"learned ({len(learned)} units)")
        ax.set_title(layer, fontsize=11)
        ax.set_xlabel("input y", fontsize=10)
        ax.set_ylabel("activation output", fontsize=10)
        ax.tick_params(labelsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=9, loc="upper left")
    for ax in list(axes.flat)[n:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def accuracy_grid(points: list[tuple[float, float, float]], path: str, title: str) -> str:
    """Final test accuracy over a grid of initial values, e.g. ``(a, b, accuracy)`` triples."""
    plt = _plt()
    pts = np.asarray(points, float)
    fig, ax = plt.subplots(figsize=(5, 4))
    sc = ax.scatter(pts[:, 0], pts[:, 1], c=pts[:, 2] * 100, s=160, cmap="viridis")
    for x, y, acc in pts:
        ax.annotate(f"{acc * 100:.1f}", (x, y), ha="center", va="center", fontsize=7, color="w")
    fig.colorbar(sc, ax=ax, label="test accuracy (%)")
    ax.set_xlabel("initial a")
    ax.set_ylabel("initial b")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def ensure_dir(path: str) -> str:
    """Creates ``path`` (and its parents) if missing; returns it."""
    os.makedirs(path, exist_ok=True)
    return path


def trajectories(records: list[dict], path: str, title: str) -> str:
    """Activation parameters over training: mean ± std of each term, one panel per parameter.

    Args:
      records: ``"trajectory"`` records of ``metrics.jsonl`` (``step``, ``layers``).
    """
    plt = _plt()
    names = list(records[0]["layers"]) if records else []
    n = max(len(names), 1)
    cols = min(n, 4)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    steps = np.asarray([r["step"] for r in records])
    for ax, name in zip(axes.flat, names, strict=False):
        mean = np.asarray([r["layers"][name]["mean"] for r in records])
        std = np.asarray([r["layers"][name]["std"] for r in records])
        for i in range(mean.shape[1]):
            ax.plot(steps, mean[:, i], color=f"C{i}", label=f"term {i + 1}")
            ax.fill_between(
                steps, mean[:, i] - std[:, i], mean[:, i] + std[:, i], color=f"C{i}", alpha=0.2
            )
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.supxlabel("training step", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path
