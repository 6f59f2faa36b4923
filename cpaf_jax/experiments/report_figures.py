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
    # Beside the last panel, so it hides no point.
    axes[0][-1].legend(markerscale=4, fontsize=6, title="class", title_fontsize=6,
                       loc="upper left", bbox_to_anchor=(1.02, 1.0))  # fmt: skip
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


def occupied(shares: list[float]) -> list[int]:
    """Quadrants (1-4) holding at least ``OCCUPIED`` of the points."""
    return [i + 1 for i, s in enumerate(shares[:4]) if s >= OCCUPIED]


def fig11_reading(points: dict[str, tuple[np.ndarray, np.ndarray]]) -> str:
    """Whether our features sit where the paper's do: sigmoid and ReLU in the first quadrant
    only, CPAF in all four."""
    out = []
    for act, (z, _) in points.items():
        quads = occupied(quadrant_shares(z))
        if act.startswith("cpaf"):
            want, words = [1, 2, 3, 4], "all four quadrants"
        elif act in ("sigmoid", "relu"):
            want, words = [1], "the first quadrant only"
        else:
            continue
        same = "as in the paper" if quads == want else "unlike the paper"
        where = ", ".join(map(str, quads)) or "none"
        out.append(f"{act}: quadrant(s) {where} ({same}: {words})")
    return "; ".join(out) + "."


def _fig11(folder: str, meta: dict) -> list[str]:
    points = fd.read_features(_paths(folder)["features"])
    lines = [
        "### Fig. 11: the 2-D features of 4.1", "",
        f"![Fig. 11: [z1, z2] of 4.1's network]({folder}/{FIG11_PNG})", "",
        f"{meta['per_class']} test images per class, one network per activation (seed "
        f"{meta['seed']}, {meta['epochs']} epochs, lr {meta['features_lr']}, on Fashion-MNIST). "
        "Share of the points strictly inside each quadrant and on an axis (%; the features are "
        "stored to 3 decimals, so a saturated sigmoid's output below 0.0005 counts as on an "
        f"axis); a quadrant counts as occupied from {OCCUPIED * 100:g}% of the points.", "",
        "| activation | test acc. of this network (%) | " + " | ".join(QUADRANTS)
        + " | on an axis | occupied |", "|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for act, (z, _) in points.items():
        shares = quadrant_shares(z)
        acc = meta["features_accuracy"].get(act, float("nan"))
        cells = " | ".join(f"{s * 100:.1f}" for s in shares)
        lines.append(f"| {act} | {acc * 100:.2f} | {cells} | "
                     f"{', '.join(map(str, occupied(shares))) or 'none'} |")  # fmt: skip
    return lines + ["", "The paper: sigmoid and ReLU in the first quadrant only, CPAF in all "
                    "four. Ours: " + fig11_reading(points), ""]  # fmt: skip


def ab_summary(pairs: dict[str, np.ndarray]) -> list[dict]:
    """Per term i and parameter: min, 1st percentile, median, 99th percentile, max over every
    layer's units, and the share inside the paper's range where it gives one."""
    arr = np.concatenate(list(pairs.values()))
    out = []
    for i in range(arr.shape[1]):
        for j, p in enumerate("ab"):
            x = arr[:, i, j]
            q = np.percentile(x, [0, 1, 50, 99, 100])
            rng = PAPER_FIG14.get(f"{p}{i + 1}")
            share = None if rng is None else float(np.mean((x >= rng[0]) & (x <= rng[1])))
            out.append({"name": f"{p}{i + 1}", "q": q, "range": rng, "share": share})
    return out


def _fig14(folder: str, meta: dict) -> list[str]:
    from cpaf_jax.activations.registry import family

    pairs = fd.read_ab(_paths(folder)["ab"])
    rec = family("cpaf_sigmoid")
    init = rec.initial_values(**dict(rec.shape_options))
    units = sum(len(v) for v in pairs.values())
    lines = [
        "### Fig. 14: the learned (a, b) of CPAF-sigmoid", "",
        f"![Fig. 14: learned (a_i, b_i) of CPAF-sigmoid]({folder}/{FIG14_PNG})", "",
        f"4.2's network with CPAF-sigmoid (seed {meta['seed']}, {meta['epochs']} epochs, lr "
        f"{meta['ab_lr']}, test accuracy {meta['ab_accuracy'] * 100:.2f}%): {units:,} "
        f"per-element units over {len(pairs)} layers ({', '.join(pairs)}), (a, b) stored to 3 "
        "decimals. Quantiles over every unit; the dashed box in the figure is the paper's range "
        "for (a1, b1).", "",
        "| parameter | initial (Table 1) | min | 1% | median | 99% | max | paper's range "
        "| share inside it (%) |", "|---|---|---|---|---|---|---|---|---|",
    ]  # fmt: skip
    for s in ab_summary(pairs):
        i = int(s["name"][1:]) - 1
        start = float(init[s["name"][0]][i])
        rng = "-" if s["range"] is None else f"{s['range'][0]:g}-{s['range'][1]:g}"
        share = "-" if s["share"] is None else f"{s['share'] * 100:.1f}"
        qs = " | ".join(f"{v:.3f}" for v in s["q"])
        lines.append(f"| {s['name']} | {start:g} | {qs} | {rng} | {share} |")
    return lines + ["", fig14_reading(ab_summary(pairs)), ""]


def fig14_reading(summary: list[dict]) -> str:
    """Our spread of (a1, b1) beside the paper's description."""
    parts = [f"{s['name']} {s['q'][1]:.2f}-{s['q'][3]:.2f} (1%-99%), {s['share'] * 100:.1f}% "
             f"of the units inside the paper's {s['range'][0]:g}-{s['range'][1]:g}"
             for s in summary if s["range"] is not None]  # fmt: skip
    (a0, a1), (b0, b1) = PAPER_FIG14["a1"], PAPER_FIG14["b1"]
    return (f"The paper: from Table 1's (4, 2) the learned a1 spread to about {a0:g}-{a1:g} and "
            f"b1 to about {b0:g}-{b1:g}. Ours: {'; '.join(parts)}.")  # fmt: skip


PENDING = ("Pending: no figure data yet (`python -m train reproduce --figure-data` trains one "
           "seed per network and writes it).")  # fmt: skip


def figures_section(folder: str | None) -> list[str]:
    """Fig. 11 and Fig. 14 from the committed data in ``folder``, beside the paper's
    description; says what to run when the data are missing."""
    lines = ["## Fig. 11 and Fig. 14, redrawn", ""]
    if not have_data(folder):
        return lines + [PENDING, ""]
    meta = read_meta(folder)
    dirty = " (from a dirty tree)" if meta.get("dirty") else ""
    lines += [
        "No model of the runs above is kept, so one seed per network was retrained for the "
        f"figures at commit `{(meta.get('commit') or '-')[:12]}`{dirty} (`python -m train "
        f"reproduce --figure-data`); the data are committed in `{folder}` and the PNGs drawn "
        "from them (`--figures`).", "",
    ]  # fmt: skip
    return lines + _fig11(folder, meta) + _fig14(folder, meta)
