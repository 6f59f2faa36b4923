"""The committed reproduction as a reference for a new run: mean and 95% interval over seeds.

``docs/reproduction/runs.csv`` holds every member the reproduction trained (20 seeds per main
activation of 4.2, 10 per activation of 4.1). A run of ``cpaf-train fashion_mnist`` or
``mnist_features`` is set beside the rows of the same activation, dataset, k and sharing, at
the run's learning rate when the reproduction trained that rate and at the paper's otherwise,
so one seed can be read against many. The CSV is part of a source checkout; an installed
package without it gets no reference (``{}``), never an error.
"""

from __future__ import annotations

import os
import textwrap

from cpaf_jax.experiments import runs_csv
from cpaf_jax.experiments.repro_stats import t_interval
from cpaf_jax.experiments.reproduction_plan import PAPER_LR

__all__ = ["REFERENCE_CSV", "STAGE_OF", "describe", "reference_for"]

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
#: The committed per-seed results of the reproduction, in a source checkout.
REFERENCE_CSV = os.path.join(_REPO, "docs", "reproduction", "runs.csv")
#: Which stage of the reproduction trained each experiment as the paper ran it.
STAGE_OF = {"fashion_mnist": "final", "mnist_features": "features"}


def _matching(rows: list[dict], run: dict) -> list[dict]:
    """Test-set rows of the run's activation and dataset, with its k and sharing as applied."""
    k, sharing = runs_csv._k_and_sharing(run)
    key = (run["activation"], run["dataset"], runs_csv._text(k), runs_csv._text(sharing))
    return [
        r for r in rows
        if r["split"] == "test" and (r["label"], r["dataset"], r["k"], r["sharing"]) == key
    ]  # fmt: skip


def reference_for(runs: list[dict], experiment: str, path: str | None = None) -> dict:
    """The reference of each group of a run's members, where the reproduction has one.

    Args:
      runs: ``results.json``'s ``runs`` (one dict per trained member).
      experiment: the experiment's name (``fashion_mnist``, ``mnist_features``; others get
        none).
      path: the CSV (default ``REFERENCE_CSV``).

    Returns:
      ``{group label: {"n", "mean", "std", "low", "high", "lr", "epochs", "train_images"}}``
      with the labels of ``cpaf_jax.experiments.report.summary_by_group``: test accuracy
      (fraction) over the reference's seeds, at the rate ``lr`` (a string as in the CSV);
      groups without reference rows are left out.
    """
    from cpaf_jax.experiments.report import group_labels, group_runs

    stage = STAGE_OF.get(experiment)
    rows = runs_csv.read(path or REFERENCE_CSV) if stage else []
    rows = [r for r in rows if r["stage"] == stage and r["experiment"] == experiment]
    if not rows:
        return {}
    by = group_runs(runs)
    labels = group_labels(list(by))
    out = {}
    for key, members in by.items():
        found = _matching(rows, members[0])
        lr = f"{members[0]['learning_rate']:g}"
        use = lr if lr in {r["lr"] for r in found} else f"{PAPER_LR:g}"
        at = [r for r in found if r["lr"] == use]
        if at:
            ref = t_interval([float(r["test_accuracy"]) for r in at])
            epochs = "/".join(sorted({r["epochs"] for r in at}))
            images = "/".join(sorted({r["train_images"] for r in at}))
            out[labels[key]] = dict(ref, lr=use, epochs=epochs, train_images=images)
    return out


def describe(reference: dict, settings: dict) -> list[str]:
    """Lines under the terminal table: what the reference is and whether it is comparable.

    Args:
      reference: ``reference_for``'s result (non-empty).
      settings: ``results.json``'s ``settings`` of the run (epochs, learning_rate,
        train_images, eval_split).
    """
    one = next(iter(reference.values()))
    lines = textwrap.wrap(
        f"ref: the committed reproduction (docs/reproduction/runs.csv), the same activation "
        f"over {one['n']} seeds, {one['epochs']} epochs, lr {one['lr']}, "
        f"{int(one['train_images']):,} training images, scored on the test set. Its 95% "
        "interval is that of the mean over seeds; one seed scatters by about its std.",
        width=100,
    )
    differ = []
    if str(settings.get("epochs")) != one["epochs"]:
        differ.append(f"{settings.get('epochs')} epochs")
    if str(settings.get("train_images")) != one["train_images"]:
        differ.append(f"{settings.get('train_images'):,} training images")
    if settings.get("eval_split", "test") != "test":
        differ.append(f"scored on the {settings['eval_split']} split")
    lrs = {r["lr"] for r in reference.values()}
    if f"{settings.get('learning_rate'):g}" not in lrs:
        differ.append(f"lr {settings.get('learning_rate'):g}")
    if differ:
        lines += textwrap.wrap(
            "This run differs from the reference (" + ", ".join(differ) + "): compare with care.",
            width=100,
        )
    return lines
