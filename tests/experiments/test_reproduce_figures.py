"""Fig. 11 and Fig. 14 of the report from committed-style data: the compact files read back what
was written, the PNGs are the same bytes when redrawn, and the section's numbers come from the
data."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cpaf_jax.experiments import figure_data as fd
from cpaf_jax.experiments import report_figures as rfig
from cpaf_jax.experiments import reproduce


def _points(rng):
    n = 40
    y = np.repeat(np.arange(10), n // 10)
    return {
        "sigmoid": (rng.uniform(0.01, 1, (n, 2)), y),
        "relu": (np.maximum(rng.normal(0, 1, (n, 2)), 0), y),
        "cpaf_relu": (rng.normal(0, 1, (n, 2)), y),
    }


def _write_data(folder, rng):
    folder.mkdir(exist_ok=True)
    points = _points(rng)
    (folder / fd.FEATURES_CSV).write_text(fd.features_text(points))
    pairs = {"act1": rng.normal([4.0, 2.0], 0.2, (50, 2, 2)), "act2": rng.normal(3, 1, (8, 2, 2))}
    np.savez_compressed(folder / fd.AB_NPZ, **fd.ab_arrays(pairs))
    accuracy = {"sigmoid": 0.44, "relu": 0.6, "cpaf_relu": 0.8}
    meta = {"commit": "0123456789abcdef" * 2 + "01234567", "dirty": False, "seed": 0,
            "epochs": 10, "per_class": 4, "ab_lr": "0.001", "features_lr": "0.001",
            "commands": [], "features_accuracy": accuracy, "ab_accuracy": 0.88}  # fmt: skip
    (folder / fd.META_JSON).write_text(json.dumps(meta))
    return points, pairs


def test_the_data_files_read_back_to_three_decimals(tmp_path, rng):
    points, pairs = _write_data(tmp_path, rng)
    back = fd.read_features(str(tmp_path / fd.FEATURES_CSV))
    for act, (z, y) in points.items():
        np.testing.assert_allclose(back[act][0], z, atol=5e-4)
        np.testing.assert_array_equal(back[act][1], y)
    ab = fd.read_ab(str(tmp_path / fd.AB_NPZ))
    assert sorted(ab) == ["act1", "act2"]
    np.testing.assert_allclose(ab["act1"], pairs["act1"], atol=5e-4)
    with pytest.raises(ValueError, match="beyond"):
        fd.ab_arrays({"x": np.full((1, 1, 2), 40.0)})


def test_redrawing_gives_the_same_pngs(tmp_path, rng):
    _write_data(tmp_path, rng)
    first = {p: open(p, "rb").read() for p in rfig.draw(str(tmp_path))}
    again = {p: open(p, "rb").read() for p in rfig.draw(str(tmp_path))}
    assert first == again and len(first) == 2
    assert all(b.startswith(b"\x89PNG") and b"Software" not in b for b in first.values())


def test_quadrant_shares_and_the_papers_description():
    z = np.array([[1, 1], [-1, 1], [-1, -1], [1, -1], [0, 2]], float)
    assert rfig.quadrant_shares(z) == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.2])
    pts = {"relu": (np.array([[0.0, 1], [1, 1], [2, 0]]), np.zeros(3, int)),
           "cpaf_relu": (z[:4], np.zeros(4, int)),
           "sigmoid": (-z[:1], np.zeros(1, int))}  # fmt: skip
    reading = rfig.fig11_reading(pts)
    assert "relu: quadrant(s) 1 (as in the paper: the first quadrant only)" in reading
    assert "cpaf_relu: quadrant(s) 1, 2, 3, 4 (as in the paper: all four quadrants)" in reading
    assert "sigmoid: quadrant(s) 3 (unlike the paper" in reading


def test_section_from_the_data_and_pending_without_it(tmp_path, rng):
    _, pairs = _write_data(tmp_path / "f", rng)
    text = "\n".join(rfig.figures_section(str(tmp_path / "f")))
    assert f"]({tmp_path / 'f'}/{rfig.FIG11_PNG})" in text and "commit `0123456789ab`" in text
    a1 = np.concatenate([p[:, 0, 0] for p in fd.read_ab(str(tmp_path / "f" / fd.AB_NPZ))
                         .values()])  # fmt: skip
    share = np.mean((a1 >= 3.75) & (a1 <= 4.5))
    line = next(ln for ln in text.splitlines() if ln.startswith("| a1 |"))
    assert line.split("|")[-2].strip() == f"{share * 100:.1f}"
    lo, hi = np.percentile(a1, [1, 99])
    assert f"Ours: a1 {lo:.2f}-{hi:.2f} (1%-99%), {share * 100:.1f}% of the units inside" in text
    assert f"{sum(len(p) for p in pairs.values()):,} per-element units" in text
    assert rfig.PENDING in "\n".join(rfig.figures_section(str(tmp_path / "none")))


def test_figures_command_draws_from_the_data(tmp_path, rng, capsys):
    _write_data(tmp_path, rng)
    assert reproduce.main(["--figures", "--figures-dir", str(tmp_path)]) == 0
    assert (tmp_path / rfig.FIG11_PNG).exists() and (tmp_path / rfig.FIG14_PNG).exists()
    assert reproduce.main(["--figures", "--figures-dir", str(tmp_path / "empty")]) == 2
    assert "run `python -m train reproduce --figure-data` first" in capsys.readouterr().err
