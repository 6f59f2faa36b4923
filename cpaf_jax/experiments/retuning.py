"""The reproduction's stages derived from ``docs/reproduction/runs.csv``: re-tuning on a wider
grid, the final rows topped up at the re-tuned rates, and longer training.

Stages (``python -m train reproduce --stage X``), run in this order:

* ``retune``: 4.2's rows (``reproduction_plan.fashion_rows``) and CPAF with only ``a`` or only
  ``b`` learned (``HALF_LEARNED``), on the validation split, at ``RETUNE_LRS`` (half-decade
  steps), seeds ``RETUNE_SEEDS`` (no final run uses them), 10 epochs as before. A row whose best
  rate is the highest or lowest it has tried gets the next rate of ``RATE_LADDER`` beyond it,
  until its best rate lies inside (or the ladder ends). A rate where a member diverged (a seed
  missing from runs.csv) cannot be chosen.
* ``final_retuned``: 4.2 on the test set at the re-tuned rate and at the paper's 1e-3, writing
  ``final`` rows of runs.csv: only the seeds its ``final`` rows lack, up to ``target_seeds``
  (``FINAL_SEEDS`` for all but APL, PAU and Swish, which keep ``EXTRA_SEEDS``; every row gets
  ``FINAL_SEEDS`` at a re-tuned rate that differs from the first tuning's choice).
* ``long``: ``LONG_ACTIVATIONS`` for ``LONG_EPOCHS`` epochs at the re-tuned rate, ``LONG_SEEDS``
  seeds (stage ``long`` in runs.csv).

Rows that share a stage and label (more seeds, another rate) write under their own ``part`` of
the runs folder, so each stays one resumable command.
"""

from __future__ import annotations

import dataclasses
import itertools

from cpaf_jax.experiments import repro_stats as rs
from cpaf_jax.experiments.reproduction_plan import (
    EXTRA,
    EXTRA_SEEDS,
    MAIN_SEEDS,
    PAPER_LR,
    STAGES,
    VALIDATION_IMAGES,
    Row,
    fashion_rows,
)

DERIVED_STAGES = ("retune", "final_retuned", "long")
#: The ``stage`` values of runs.csv, in the file's order (``final_retuned`` writes ``final``).
CSV_STAGES = STAGES + ("retune", "long")
#: Half-decade learning rates; a re-tuning grid grows along it.
RATE_LADDER = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
RETUNE_LRS = (3e-4, 1e-3, 3e-3, 1e-2)
RETUNE_SEEDS = (1000, 1001, 1002)
FINAL_SEEDS = MAIN_SEEDS
HALF_LEARNED = ("cpaf_sigmoid_a_only", "cpaf_sigmoid_b_only", "cpaf_relu_a_only",
                "cpaf_relu_b_only")  # fmt: skip
LONG_ACTIVATIONS = ("cpaf_sigmoid", "cpaf_relu", "prelu", "elu_learned", "relu")
LONG_EPOCHS = 30
LONG_SEEDS = 10


def _rate(lr: float) -> str:
    """A rate as runs.csv writes it."""
    return f"{lr:g}"


def rows_4_2(stage: str, seeds_of, **kw) -> list[Row]:
    """4.2's rows (``fashion_rows``) and the half-learned CPAF rows, in the order they run."""
    half = [Row(stage, a, "fashion_mnist", a, seeds_of(a), **kw) for a in HALF_LEARNED]
    return fashion_rows(stage, seeds_of, **kw) + half


def chosen_rates(rows: list[dict], stage: str) -> dict[str, str]:
    """Each label's rate (as in the CSV) with the highest mean accuracy in ``stage`` (ties: the
    smaller rate), among the rates that have every seed the label has in that stage."""
    out = {}
    for label in sorted({r["label"] for r in rows if r["stage"] == stage}):
        acc: dict[str, list[float]] = {}
        seeds: dict[str, set[str]] = {}
        for r in rows:
            if r["stage"] == stage and r["label"] == label:
                acc.setdefault(r["lr"], []).append(float(r["test_accuracy"]))
                seeds.setdefault(r["lr"], set()).add(r["seed"])
        every = set().union(*seeds.values())
        means = {lr: rs.t_interval(v)["mean"] for lr, v in acc.items() if seeds[lr] == every}
        if means:
            out[label] = max(means, key=lambda lr: (means[lr], -float(lr)))
    return out


def retune_rates(rows: list[dict], label: str) -> tuple[float, ...]:
    """The rates ``label``'s re-tuning needs so far: ``RETUNE_LRS``, grown by one ladder step
    beyond an edge while the best rate tried is at that edge."""
    grid = list(RETUNE_LRS)
    own = [r for r in rows if r["stage"] == "retune" and r["label"] == label]
    while {_rate(x) for x in grid} <= {r["lr"] for r in own}:
        inside = [r for r in own if r["lr"] in {_rate(x) for x in grid}]
        best = chosen_rates(inside, "retune").get(label)
        lo, hi = RATE_LADDER.index(grid[0]), RATE_LADDER.index(grid[-1])
        if best == _rate(grid[-1]) and hi + 1 < len(RATE_LADDER):
            grid.append(RATE_LADDER[hi + 1])
        elif best == _rate(grid[0]) and lo > 0:
            grid.insert(0, RATE_LADDER[lo - 1])
        else:
            break
    return tuple(grid)


def retune_rows(rows: list[dict]) -> list[Row]:
    """The ``retune`` stage: each row on ``RETUNE_LRS``, plus one row per grown rate."""
    out = []
    for row in rows_4_2("retune", lambda a: len(RETUNE_SEEDS), lrs=RETUNE_LRS,
                        validation=VALIDATION_IMAGES, first_seed=RETUNE_SEEDS[0]):  # fmt: skip
        out.append(row)
        for lr in retune_rates(rows, row.label):
            if lr not in RETUNE_LRS:
                out.append(dataclasses.replace(row, lrs=(lr,), part=f"retune-lr{_rate(lr)}"))
    return out


def retuned_rates(rows: list[dict]) -> dict[str, str]:
    """Each label's re-tuned rate, for the labels whose re-tuning grid is complete."""
    chosen = chosen_rates(rows, "retune")
    tried = {(r["label"], r["lr"]) for r in rows if r["stage"] == "retune"}
    return {
        label: lr for label, lr in chosen.items()
        if all((label, _rate(x)) in tried for x in retune_rates(rows, label))
    }  # fmt: skip


def _needs(rows: list[dict], labels) -> dict[str, str]:
    rates = retuned_rates(rows)
    missing = [a for a in labels if a not in rates]
    if missing:
        raise ValueError(
            f"no finished re-tuning in runs.csv for {', '.join(missing)}; run "
            "`python -m train reproduce --stage retune --resume` first"
        )
    return rates


def target_seeds(label: str, lr: str, retuned: str, first_choice: str | None) -> int:
    """Seeds a ``final`` row needs at rate ``lr``: ``EXTRA_SEEDS`` for APL, PAU and Swish,
    ``FINAL_SEEDS`` for the others, and ``FINAL_SEEDS`` at a re-tuned rate that differs from
    the first tuning's choice."""
    changed = lr == retuned and first_choice not in (None, retuned)
    return FINAL_SEEDS if changed or label not in EXTRA else EXTRA_SEEDS


def _runs(seeds: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Consecutive runs of sorted seeds: (10, 11, 12, 15) -> [(10, 11, 12), (15,)]."""
    groups = itertools.groupby(enumerate(seeds), key=lambda p: p[1] - p[0])
    return [tuple(s for _, s in g) for _, g in groups]


def final_retuned_rows(rows: list[dict]) -> list[Row]:
    """The ``final_retuned`` stage: the seeds each ``final`` row lacks at its re-tuned rate
    and at ``PAPER_LR``; rates lacking the same seeds share one command.

    Raises:
      ValueError: a row without a finished re-tuning.
    """
    bases = rows_4_2("final", lambda a: 1)
    rates = _needs(rows, [b.label for b in bases])
    first = chosen_rates(rows, "tune")
    out = []
    for base in bases:
        new = rates[base.label]
        lacking: dict[tuple[int, ...], list[float]] = {}
        for lr in sorted({new, _rate(PAPER_LR)}, key=float):
            have = {
                int(r["seed"])
                for r in rows
                if r["stage"] == "final" and r["label"] == base.label and r["lr"] == lr
            }
            n = target_seeds(base.label, lr, new, first.get(base.label))
            seeds = tuple(s for s in range(n) if s not in have)
            if seeds:
                lacking.setdefault(seeds, []).append(float(lr))
        for seeds, lrs in lacking.items():
            for run in _runs(seeds):
                part = f"final_retuned-s{run[0]}-{run[-1]}-lr{'_'.join(map(_rate, lrs))}"
                out.append(dataclasses.replace(base, seeds=len(run), first_seed=run[0],
                                               lrs=tuple(lrs), part=part))  # fmt: skip
    return out


def long_rows(rows: list[dict]) -> list[Row]:
    """The ``long`` stage: ``LONG_ACTIVATIONS`` for ``LONG_EPOCHS`` epochs at their re-tuned
    rates.

    Raises:
      ValueError: an activation without a finished re-tuning.
    """
    rates = _needs(rows, LONG_ACTIVATIONS)
    return [
        Row(
            "long", a, "fashion_mnist", a, LONG_SEEDS, epochs=LONG_EPOCHS, lrs=(float(rates[a]),)
        )  # fmt: skip
        for a in LONG_ACTIVATIONS
    ]


def derived_rows(stage: str, rows: list[dict]) -> list[Row]:
    """Every row of a derived stage given runs.csv's ``rows``, in the order they run.

    Raises:
      ValueError: an unknown stage, or a stage whose re-tuning has not finished.
    """
    if stage == "retune":
        return retune_rows(rows)
    if stage == "final_retuned":
        return final_retuned_rows(rows)
    if stage == "long":
        return long_rows(rows)
    raise ValueError(f"unknown stage {stage!r}; the derived stages are {', '.join(DERIVED_STAGES)}")
