"""Fig. 11 and Fig. 14 of the reproduction: PNGs and the report's section, from the committed
data of ``cpaf_jax.experiments.figure_data`` (never from a model: none is kept).

Drawing is deterministic (fixed sizes, no timestamp or software tag in the PNG), so redrawing
from the same data gives the same files.
"""

from __future__ import annotations

import json
import os

import numpy as np

from cpaf_jax.experiments import figure_data as fd

FIG11_PNG = "fig11_features.png"
FIG14_PNG = "fig14_ab.png"
#: The paper's description of Fig. 14 (CPAF-sigmoid, 4.2): from Table 1's (4, 2), the learned
#: a_1 lie in about 3.75-4.5 and b_1 in about 1.6-2.55.
PAPER_FIG14 = {"a1": (3.75, 4.5), "b1": (1.6, 2.55)}
#: A quadrant counts as occupied when it holds at least this share of an activation's points.
OCCUPIED = 0.01
QUADRANTS = ("z1 > 0, z2 > 0", "z1 < 0, z2 > 0", "z1 < 0, z2 < 0", "z1 > 0, z2 < 0")


def _paths(folder: str) -> dict[str, str]:
    names = {"features": fd.FEATURES_CSV, "ab": fd.AB_NPZ, "meta": fd.META_JSON}
    return {k: os.path.join(folder, v) for k, v in names.items()}


def have_data(folder: str | None) -> bool:
    """Whether ``folder`` holds the three data files."""
    return folder is not None and all(os.path.exists(p) for p in _paths(folder).values())


def quadrant_shares(z: np.ndarray) -> list[float]:
    """Shares of the points ``[n, 2]`` strictly inside each quadrant (``QUADRANTS``' order),
    then the share on an axis (z1 = 0 or z2 = 0, as ReLU's zeros are)."""
    z1, z2 = z[:, 0], z[:, 1]
    masks = [(z1 > 0) & (z2 > 0), (z1 < 0) & (z2 > 0), (z1 < 0) & (z2 < 0), (z1 > 0) & (z2 < 0)]
    shares = [float(np.mean(m)) for m in masks]
    return shares + [1.0 - sum(shares)]


def _save(fig, path: str) -> str:
    # No Software tag and no timestamp: the same data gives the same bytes.
    fig.savefig(path, dpi=80, metadata={"Software": None})
    return path


def draw_features(points: dict[str, tuple[np.ndarray, np.ndarray]], path: str) -> str:
    """Fig. 11: ``[z1, z2]`` per activation, one panel each, one colour per class."""
    from cpaf_jax.experiments.plots import _plt

    plt = _plt()
    fig, axes = plt.subplots(1, len(points), figsize=(3.2 * len(points), 3.4), squeeze=False)
    for ax, (act, (z, y)) in zip(axes[0], points.items(), strict=True):
        for c in range(int(y.max()) + 1):
            ax.scatter(z[y == c, 0], z[y == c, 1], s=2, alpha=0.5, color=f"C{c}", label=str(c))
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        ax.set(title=act, xlabel="z1", ylabel="z2")
    axes[0][-1].legend(markerscale=4, fontsize=6, loc="best", title="class", title_fontsize=6)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def draw_ab(pairs: dict[str, np.ndarray], path: str) -> str:
    """Fig. 14: learned (a_i, b_i) over all layers, one colour per term, the paper's ranges
    of (a_1, b_1) as a dashed box."""
    from cpaf_jax.experiments.plots import _plt

    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.6, 4.4))
    arr = np.concatenate(list(pairs.values()))
    for i in range(arr.shape[1]):
        ax.scatter(arr[:, i, 0], arr[:, i, 1], s=2, alpha=0.3, color=f"C{i}",
                   label=f"(a{i + 1}, b{i + 1})")  # fmt: skip
    (a0, a1), (b0, b1) = PAPER_FIG14["a1"], PAPER_FIG14["b1"]
    ax.plot([a0, a1, a1, a0, a0], [b0, b0, b1, b1, b0], "k--", lw=1, label="paper: (a1, b1)")
    ax.set(xlabel="a", ylabel="b", title=f"CPAF-sigmoid, 4.2 network: {len(arr):,} units")
    ax.grid(alpha=0.3)
    ax.legend(markerscale=5, fontsize=7)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
    return path


def draw(folder: str) -> list[str]:
    """Draws both PNGs into ``folder`` from its data files; returns their paths.

    Raises:
      FileNotFoundError: the data files are missing (``--figure-data`` writes them).
    """
    if not have_data(folder):
        raise FileNotFoundError(
            f"no figure data in {folder}; run `python -m train reproduce --figure-data` first"
        )
    paths = _paths(folder)
    return [
        draw_features(fd.read_features(paths["features"]), os.path.join(folder, FIG11_PNG)),
        draw_ab(fd.read_ab(paths["ab"]), os.path.join(folder, FIG14_PNG)),
    ]


def read_meta(folder: str) -> dict:
    """``figures.json`` of ``folder``."""
    with open(_paths(folder)["meta"]) as f:
        return json.load(f)
