"""``report.md``: the paper's numbers beside ours, with spread over seeds when there are several."""

from __future__ import annotations

from collections import defaultdict

from cpaf_jax.experiments.stats import paired_difference, summarize


def _fmt(x: float, scale: float = 1.0, digits: int = 2) -> str:
    if x is None or x != x:
        return "-"
    return f"{x * scale:.{digits}f}"


def summary_by_activation(runs: list[dict]) -> dict[str, dict]:
    """Per activation: summaries of test accuracy (fraction) and loss over finished seeds."""
    by = defaultdict(list)
    for r in runs:
        if r.get("failed_step") is None and r.get("test_accuracy") is not None:
            by[r["activation"]].append(r)
    return {
        act: {
            "test_accuracy": summarize([r["test_accuracy"] for r in rs]),
            "test_loss": summarize([r["test_loss"] for r in rs]),
            "seeds": sorted(r["seed"] for r in rs),
        }
        for act, rs in by.items()
    }


def comparisons(runs: list[dict], baseline: str | None) -> dict[str, dict]:
    """Paired differences (activation - baseline) of test accuracy over common seeds."""
    if not baseline:
        return {}
    acc = defaultdict(dict)
    for r in runs:
        if r.get("failed_step") is None and r.get("test_accuracy") is not None:
            acc[r["activation"]][r["seed"]] = r["test_accuracy"]
    if baseline not in acc:
        return {}
    return {act: paired_difference(acc[act], acc[baseline]) for act in acc if act != baseline}


def render(cfg, runs: list[dict], *, baseline: str | None, command: str, plots: list[str]) -> str:
    """The markdown report of one experiment run."""
    summary = summary_by_activation(runs)
    lines = [
        f"# Experiment {cfg.section}: {cfg.name}",
        "",
        f"Command: `{command}`",
        "",
        f"Dataset `{runs[0]['dataset'] if runs else cfg.dataset}`, model `{cfg.model}` "
        f"{cfg.model_kwargs or ''}, {cfg.optimizer} lr {runs[0]['learning_rate'] if runs else ''}"
        f", batch {runs[0]['batch_size'] if runs else cfg.batch_size}, "
        f"{runs[0]['epochs'] if runs else cfg.epochs} epochs.",
        "",
        "| activation | paper acc. (%) | ours acc. (%) mean ± std | 95% CI | paper loss "
        "| ours loss | seeds | s/epoch | time to "
        f"{cfg.time_to_accuracy:.0%} (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for act in dict.fromkeys([r["activation"] for r in runs]):
        s = summary.get(act)
        paper = cfg.paper.get(act, {})
        mine = [r for r in runs if r["activation"] == act]
        epoch_s = [x for r in mine for x in r.get("epoch_seconds", [])[1:]] or [
            x for r in mine for x in r.get("epoch_seconds", [])
        ]
        tta = [r["time_to_accuracy"] for r in mine if r.get("time_to_accuracy") is not None]
        if s is None:
            lines.append(f"| {act} | {paper.get('test_accuracy', '-')} | failed | | | | | | |")
            continue
        acc, loss = s["test_accuracy"], s["test_loss"]
        ci = (
            f"[{_fmt(acc['ci95_low'], 100)}, {_fmt(acc['ci95_high'], 100)}]"
            if acc["n"] > 1
            else "-"
        )
        lines.append(
            f"| {act} | {paper.get('test_accuracy', '-')} | {_fmt(acc['mean'], 100)} ± "
            f"{_fmt(acc['std'], 100)} | {ci} | {paper.get('test_loss', '-')} | "
            f"{_fmt(loss['mean'], 1, 3)} ± {_fmt(loss['std'], 1, 3)} | {acc['n']} | "
            f"{_fmt(sum(epoch_s) / len(epoch_s) if epoch_s else float('nan'), 1, 1)} | "
            f"{_fmt(sum(tta) / len(tta) if tta else float('nan'), 1, 1)} |"
        )
    failed = [r for r in runs if r.get("failed_step") is not None]
    if failed:
        what = [f"{r['activation']} seed {r['seed']} at step {r['failed_step']}" for r in failed]
        lines += ["", "Failed runs (NaN/Inf): " + ", ".join(what)]
    comp = comparisons(runs, baseline)
    if comp:
        lines += [
            "",
            f"Paired difference in test accuracy against `{baseline}` (same seeds), "
            "percentage points:",
            "",
            "| activation | mean diff | 95% CI | seeds | significant |",
            "|---|---|---|---|---|",
        ]
        for act, d in comp.items():
            lines.append(
                f"| {act} | {_fmt(d['mean'], 100)} | [{_fmt(d['ci95_low'], 100)}, "
                f"{_fmt(d['ci95_high'], 100)}] | {d['seeds']} | "
                f"{'yes' if d['significant'] else 'no'} |"
            )
    lines += ["", "Settings the paper leaves open, as chosen here:", ""]
    lines += [f"- {k}: {v}" for k, v in cfg.chosen.items()]
    if plots:
        lines += ["", "Plots:", ""] + [f"![{p}]({p})" for p in plots]
    return "\n".join(lines) + "\n"


def table(runs: list[dict], cfg) -> str:
    """A short plain-text comparison table for the terminal."""
    summary = summary_by_activation(runs)
    out = [f"{'activation':<14} {'paper acc %':>11} {'ours acc %':>14} {'ours loss':>10} {'n':>3}"]
    for act, s in summary.items():
        paper = cfg.paper.get(act, {}).get("test_accuracy", "-")
        acc = s["test_accuracy"]
        std = f"±{acc['std'] * 100:.2f}" if acc["n"] > 1 else ""
        out.append(
            f"{act:<14} {paper!s:>11} {acc['mean'] * 100:>8.2f}{std:>6} "
            f"{s['test_loss']['mean']:>10.4f} {acc['n']:>3}"
        )
    return "\n".join(out)
