"""``report.md``: the paper's numbers beside ours, with spread over seeds when there are several.

Statistics never mix unlike runs: runs are grouped by everything that differs between them
except the seed (activation, learning rate, initial a/b, k, sharing, ...; see
``GROUP_FIELDS``), each group is summarised on its own, and a paired comparison pairs seeds of
one group with the baseline activation's group under the same settings.
"""

from __future__ import annotations

from cpaf_jax.experiments import stats as _stats
from cpaf_jax.experiments.stats import paired_difference, summarize

__all__ = [
    "GROUP_FIELDS",
    "ReportError",
    "comparisons",
    "group_key",
    "group_labels",
    "group_runs",
    "overrides",
    "render",
    "summary_by_activation",
    "summary_by_group",
    "table",
]

# Run fields that make runs unlike (besides the activation): (field, short name in labels).
GROUP_FIELDS = (
    ("dataset", "dataset"),
    ("learning_rate", "lr"),
    ("init_a", "a"),
    ("init_b", "b"),
    ("k", "k"),
    ("sharing", "sharing"),
    ("epochs", "epochs"),
    ("batch_size", "batch"),
    ("activation_lr", "act_lr"),
    ("weight_decay", "wd"),
)
# Settings that only CPAF activations have: a baseline without them pairs with any value.
ACTIVATION_SPECIFIC = ("init_a", "init_b", "k")


class ReportError(ValueError):
    """Runs that cannot be summarised honestly (the same seed twice in one group)."""


def _hashable(v):
    if isinstance(v, list | tuple):
        return tuple(_hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, _hashable(x)) for k, x in v.items()))
    return v


def group_key(run: dict) -> tuple:
    """``(activation, value of each GROUP_FIELDS entry)``: runs alike but for the seed."""
    return (run["activation"],) + tuple(_hashable(run.get(f)) for f, _ in GROUP_FIELDS)


def _settings(key: tuple) -> dict:
    return {f: v for (f, _), v in zip(GROUP_FIELDS, key[1:], strict=True) if v is not None}


def _show(v) -> str:
    if isinstance(v, tuple):
        # a_i = A for every term; b = linspace(B, -B, k) is named by its first value B.
        return f"{v[0]:g}" if v and isinstance(v[0], float) else ",".join(map(str, v))
    return f"{v:g}" if isinstance(v, float) else str(v)


def group_runs(runs: list[dict]) -> dict[tuple, list[dict]]:
    """Runs by :func:`group_key`, in first-seen order.

    Raises:
      ReportError: a group holds one seed twice (two runs that statistics would count as
        independent samples but are not).
    """
    by: dict[tuple, list[dict]] = {}
    for r in runs:
        by.setdefault(group_key(r), []).append(r)
    labels = group_labels(list(by))
    for key, rs in by.items():
        seeds = [r["seed"] for r in rs]
        twice = sorted({s for s in seeds if seeds.count(s) > 1})
        if twice:
            raise ReportError(
                f"runs of {labels[key]} hold seed(s) {twice} more than once; every seed may "
                "appear once per setting (rerun into a new --out or with --overwrite)"
            )
    return by


def group_labels(keys: list[tuple]) -> dict[tuple, str]:
    """A readable label per group: the activation, plus the settings that vary among groups.

    An activation with a single group under unchanging settings is labelled by its name
    alone, so a plain run's summary is keyed by activation as before.
    """
    varying = [
        i
        for i in range(len(GROUP_FIELDS))
        if len({k[i + 1] for k in keys if k[i + 1] is not None}) > 1
    ]
    labels = {}
    for key in keys:
        parts = [
            f"{GROUP_FIELDS[i][1]}={_show(key[i + 1])}" for i in varying if key[i + 1] is not None
        ]
        labels[key] = " ".join([key[0], *parts])
    return labels


def _finished(rs: list[dict]) -> list[dict]:
    return [r for r in rs if r.get("failed_step") is None and r.get("test_accuracy") is not None]


def summary_by_group(runs: list[dict]) -> dict[str, dict]:
    """Per group label: summaries of test accuracy (fraction) and loss over finished seeds.

    Returns:
      ``{label: {"activation", "settings", "test_accuracy", "test_loss", "seeds"}}`` for
      every group with a finished run; ``settings`` holds the group's non-None
      ``GROUP_FIELDS`` values.
    """
    by = group_runs(runs)
    labels = group_labels(list(by))
    out = {}
    for key, rs in by.items():
        done = _finished(rs)
        if done:
            out[labels[key]] = {
                "activation": key[0],
                "settings": _settings(key),
                "test_accuracy": summarize([r["test_accuracy"] for r in done]),
                "test_loss": summarize([r["test_loss"] for r in done]),
                "seeds": sorted(r["seed"] for r in done),
            }
    return out


# The name callers used while every activation had one group.
summary_by_activation = summary_by_group


def _baseline_for(key: tuple, baselines: list[tuple]) -> tuple | None:
    """The baseline group run under ``key``'s settings, or None if none matches exactly one."""
    matches = []
    for b in baselines:
        same = all(
            b[i + 1] == key[i + 1]
            for i, (field, _) in enumerate(GROUP_FIELDS)
            if field not in ACTIVATION_SPECIFIC or b[i + 1] is not None
        )
        if same:
            matches.append(b)
    return matches[0] if len(matches) == 1 else None


def comparisons(runs: list[dict], baseline: str | None) -> dict[str, dict]:
    """Paired differences (group - baseline group) of test accuracy over common seeds.

    Each group is paired with the ``baseline`` activation's group under the same settings
    (learning rate, epochs, ...; CPAF-only settings such as initial a/b count only when the
    baseline has them), on the seeds both finished. Groups without such a baseline group are
    left out.

    Returns:
      ``{label: paired_difference(...) + {"baseline": baseline group label}}``; when the
      statistics module offers ``holm``, also ``"p_holm"``, the Holm-adjusted p-value over
      all comparisons returned.
    """
    if not baseline:
        return {}
    by = group_runs(runs)
    labels = group_labels(list(by))
    acc = {key: {r["seed"]: r["test_accuracy"] for r in _finished(rs)} for key, rs in by.items()}
    bases = [k for k in by if k[0] == baseline]
    out = {}
    for key in by:
        if key[0] == baseline:
            continue
        base = _baseline_for(key, bases)
        if base is not None:
            out[labels[key]] = dict(paired_difference(acc[key], acc[base]), baseline=labels[base])
    holm = getattr(_stats, "holm", None)
    if holm is not None and out:
        for d, p in zip(out.values(), holm([d.get("p_value") for d in out.values()]), strict=True):
            d["p_holm"] = p
    return out


def _fmt(x: float, scale: float = 1.0, digits: int = 2) -> str:
    if x is None or x != x:
        return "-"
    return f"{x * scale:.{digits}f}"


def _p(x) -> str:
    if x is None or x != x:
        return "-"
    return f"{x:.3g}"


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def _summary_rows(cfg, runs: list[dict]) -> list[str]:
    """One table row per group: paper, ours (mean, std, CI), seeds, timing."""
    by = group_runs(runs)
    labels = group_labels(list(by))
    rows = []
    for key, mine in by.items():
        label, paper = labels[key], cfg.paper.get(key[0], {})
        done = _finished(mine)
        if not done:
            rows.append(f"| {label} | {paper.get('test_accuracy', '-')} | failed | | | | | | |")
            continue
        acc = summarize([r["test_accuracy"] for r in done])
        loss = summarize([r["test_loss"] for r in done])
        epoch_s = [x for r in mine for x in r.get("epoch_seconds", [])[1:]] or [
            x for r in mine for x in r.get("epoch_seconds", [])
        ]
        tta = [r["time_to_accuracy"] for r in mine if r.get("time_to_accuracy") is not None]
        ci = (
            f"[{_fmt(acc['ci95_low'], 100)}, {_fmt(acc['ci95_high'], 100)}]"
            if acc["n"] > 1
            else "-"
        )
        # One seed has no spread: its mean alone, not "± -".
        acc_std = f" ± {_fmt(acc['std'], 100)}" if acc["n"] > 1 else ""
        loss_std = f" ± {_fmt(loss['std'], 1, 3)}" if acc["n"] > 1 else ""
        rows.append(
            f"| {label} | {paper.get('test_accuracy', '-')} | {_fmt(acc['mean'], 100)}"
            f"{acc_std} | {ci} | {paper.get('test_loss', '-')} | "
            f"{_fmt(loss['mean'], 1, 3)}{loss_std} | {acc['n']} | "
            f"{_fmt(_mean(epoch_s), 1, 1)} | {_fmt(_mean(tta), 1, 1)} |"
        )
    return rows


def _comparison_rows(comp: dict[str, dict], baseline: str) -> list[str]:
    holm = any("p_holm" in d for d in comp.values())
    lines = [
        "",
        f"Paired difference in test accuracy against `{baseline}` under the same settings "
        "(same seeds), percentage points; p: two-sided paired t-test"
        + (", p (Holm): adjusted over the comparisons below" if holm else "")
        + ":",
        "",
        "| activation | against | mean diff | 95% CI | seeds | p |"
        + (" p (Holm) |" if holm else "")
        + " significant |",
        "|---|---|---|---|---|---|" + ("---|" if holm else "") + "---|",
    ]
    for label, d in comp.items():
        lines.append(
            f"| {label} | {d['baseline']} | {_fmt(d['mean'], 100)} | "
            f"[{_fmt(d['ci95_low'], 100)}, {_fmt(d['ci95_high'], 100)}] | {d['seeds']} | "
            f"{_p(d.get('p_value'))} |"
            + (f" {_p(d.get('p_holm'))} |" if holm else "")
            + f" {'yes' if d['significant'] else 'no'} |"
        )
    return lines


def _distinct(runs: list[dict], field: str, default) -> str:
    values = list(dict.fromkeys(str(r.get(field)) for r in runs)) if runs else [str(default)]
    return values[0] if len(values) == 1 else "{" + ", ".join(values) + "}"


def overrides(cfg, runs: list[dict]) -> list[str]:
    """The experiment's defaults this run did not use, e.g. ``["epochs 1 (default 10)"]``."""
    out = []
    for field, name, default in (
        ("epochs", "epochs", cfg.epochs),
        ("learning_rate", "learning rate", cfg.learning_rate),
        ("batch_size", "batch size", cfg.batch_size),
    ):
        used = list(dict.fromkeys(r.get(field) for r in runs if r.get(field) is not None))
        if used and used != [default]:
            shown = ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in used)
            out.append(f"{name} {shown} (default {default:g})")
    return out


def render(cfg, runs: list[dict], *, baseline: str | None, command: str, plots: list[str]) -> str:
    """The markdown report of one experiment run (one table row per group of runs)."""
    lines = [
        f"# Experiment {cfg.section}: {cfg.name}",
        "",
        f"Command: `{command}`",
        "",
        f"Dataset `{_distinct(runs, 'dataset', cfg.dataset)}`, model `{cfg.model}`"
        f"{' ' + str(cfg.model_kwargs) if cfg.model_kwargs else ''}, {cfg.optimizer} lr "
        f"{_distinct(runs, 'learning_rate', cfg.learning_rate)}, batch "
        f"{_distinct(runs, 'batch_size', cfg.batch_size)}, "
        f"{_distinct(runs, 'epochs', cfg.epochs)} epochs.",
        "",
        "| activation | paper acc. (%) | ours acc. (%) mean ± std | 95% CI | paper loss "
        "| ours loss | seeds | s/epoch | time to "
        f"{cfg.time_to_accuracy:.0%} (s) |",
        "|---|---|---|---|---|---|---|---|---|",
        *_summary_rows(cfg, runs),
    ]
    failed = [r for r in runs if r.get("failed_step") is not None]
    if failed:
        what = [f"{r['activation']} seed {r['seed']} at step {r['failed_step']}" for r in failed]
        lines += ["", "Failed runs (NaN/Inf): " + ", ".join(what)]
    comp = comparisons(runs, baseline)
    if comp:
        lines += _comparison_rows(comp, baseline)
    lines += ["", "Settings the paper leaves open, and the defaults chosen here:", ""]
    lines += [f"- {k}: {v}" for k, v in cfg.chosen.items()]
    changed = overrides(cfg, runs)
    if changed:
        lines += ["", "This run changed these defaults: " + ", ".join(changed) + "."]
    if plots:
        lines += ["", "Plots:", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def _ref_cells(ref: dict | None) -> str:
    if ref is None:
        return f" {'-':>14} {'-':>15} {'-':>3}"
    std = f"±{ref['std'] * 100:.2f}" if ref["n"] > 1 else ""
    ci = f"[{ref['low'] * 100:.2f}, {ref['high'] * 100:.2f}]" if ref["n"] > 1 else "-"
    return f" {ref['mean'] * 100:>8.2f}{std:>6} {ci:>15} {ref['n']:>3}"


def table(runs: list[dict], cfg, reference: dict | None = None) -> str:
    """A short plain-text comparison table for the terminal, one line per group, with the
    95% interval of the mean accuracy (Student's t over seeds) when there are several.

    Args:
      runs: ``results.json``'s runs.
      cfg: the experiment's config (the paper's figures).
      reference: ``cpaf_jax.experiments.reference.reference_for``'s result; when given, three
        more columns set each group beside the committed reproduction's seeds.
    """
    summary = summary_by_group(runs)
    width = max([14, *(len(label) for label in summary)])
    head = (
        f"{'activation':<{width}} {'paper acc %':>11} {'ours acc %':>14} {'95% CI':>15} "
        f"{'ours loss':>10} {'n':>3}"
    )
    if reference:
        head += f" {'ref acc %':>14} {'ref 95% CI':>15} {'n':>3}"
    out = [head]
    for label, s in summary.items():
        paper = cfg.paper.get(s["activation"], {}).get("test_accuracy", "-")
        acc = s["test_accuracy"]
        std = f"±{acc['std'] * 100:.2f}" if acc["n"] > 1 else ""
        ci = f"[{acc['ci95_low'] * 100:.2f}, {acc['ci95_high'] * 100:.2f}]" if acc["n"] > 1 else "-"
        line = (
            f"{label:<{width}} {paper!s:>11} {acc['mean'] * 100:>8.2f}{std:>6} {ci:>15} "
            f"{s['test_loss']['mean']:>10.4f} {acc['n']:>3}"
        )
        out.append(line + (_ref_cells(reference.get(label)) if reference else ""))
    return "\n".join(out)
