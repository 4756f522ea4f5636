"""Tables from metrics.csv: summary.csv, paired tests, and a Markdown report.

Held-out (test-subject) figures come first; the paper's training figures sit beside them,
labelled as such, so nobody mistakes one for the other.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.experiments.arms import PAIRED, PATHNET_ROWS, ZERO_SHOT, is_shared_unit, rows_of
from pathnet_fer.experiments.metrics_log import final_values, read_metrics, summarise
from pathnet_fer.experiments.report_latex import DAGGER, latex_tables

PAIRED_TEST = (
    "Wilcoxon signed-rank test (two-sided) on per-fold differences, each fold's value being "
    "the mean over its iterations (folds are the independent units: iterations of one fold "
    "share its test subjects); paired t-test p given beside it"
)
# (split, level, metric, column title) in table order.
TABLE_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("test", "frame", "accuracy", "test acc (frame)"),
    ("test", "frame", "macro_f1", "test macro-F1 (frame)"),
    ("test", "frame", "uar", "test UAR (frame)"),
    ("test", "clip", "accuracy", "test acc (clip)"),
    ("test", "clip", "macro_f1", "test macro-F1 (clip)"),
    ("test", "frame", "top_share", "test top-class share (frame)"),
    ("test", "frame", "confidence", "test mean max-prob (frame)"),
    ("test", "frame", "forgetting", "forgetting after the chain"),
    ("train", "minibatch", "accuracy", "train acc (paper-style)"),
    ("train", "minibatch", "loss", "train loss (paper-style)"),
    ("train", "minibatch", "train_seconds", "train seconds"),
    ("train", "minibatch", "parameters", "parameters"),
)
COMPARED = (
    ("test", "frame", "accuracy"),
    ("test", "frame", "macro_f1"),
    ("test", "frame", "uar"),
    ("test", "clip", "accuracy"),
    ("train", "minibatch", "accuracy"),
    ("train", "minibatch", "loss"),
)
BUDGET = ("train", "minibatch", "samples")
"""The (split, level, metric) of a task's training budget in samples seen. Baselines
write it; a PathNet arm's is derived (``with_budgets``)."""
PATHS_PER_GENERATION = 2  # a generation trains the two paths of one binary tournament


def paired_comparison(
    metrics: pd.DataFrame,
    experiment: str,
    arm_a: str = PAIRED[0].name,
    arm_b: str = PAIRED[1].name,
    split: str = "test",
    level: str = "frame",
    metric: str = "accuracy",
    task: str | None = None,
) -> dict[str, object] | None:
    """``arm_a`` minus ``arm_b`` on one final metric of one task (a chain's link; None:
    every task of the set), paired by fold; None if not both arms."""
    final = final_values(metrics)
    sel = final[
        (final.experiment == experiment)
        & (final.split == split)
        & (final.level == level)
        & (final.metric == metric)
        & ((final.task == task) if task is not None else True)
    ]
    per_fold = sel.groupby(["arm", "fold"])["value"].mean().unstack("arm")
    if arm_a not in per_fold or arm_b not in per_fold:
        return None
    pairs = per_fold[[arm_a, arm_b]].dropna()
    diff = (pairs[arm_a] - pairs[arm_b]).to_numpy()
    n = len(diff)
    p_w = p_t = math.nan
    if n >= 2:
        if np.allclose(diff, 0):
            p_w = p_t = 1.0
        else:
            with warnings.catch_warnings():  # near-constant differences: p is still valid
                warnings.simplefilter("ignore", RuntimeWarning)
                p_w = float(stats.wilcoxon(diff, zero_method="zsplit").pvalue)
                p_t = float(stats.ttest_rel(pairs[arm_a], pairs[arm_b]).pvalue)
    return {
        "experiment": experiment,
        "task": task if task is not None else ",".join(sorted(set(sel.task))),
        "comparison": f"{arm_a} - {arm_b}",
        "split": split,
        "level": level,
        "metric": metric,
        "mean_a": float(pairs[arm_a].mean()) if n else math.nan,
        "mean_b": float(pairs[arm_b].mean()) if n else math.nan,
        "mean_diff": float(diff.mean()) if n else math.nan,
        "std_diff": float(diff.std(ddof=1)) if n > 1 else math.nan,
        "n_folds": n,
        "wins": int((diff > 0).sum()),
        "losses": int((diff < 0).sum()),
        "p_wilcoxon": p_w,
        "p_ttest": p_t,
    }


def comparisons(metrics: pd.DataFrame) -> pd.DataFrame:
    """Transfer minus scratch for each experiment set, link (task) and compared metric."""
    out = []
    for experiment in metrics["experiment"].unique():
        part = metrics[metrics.experiment == experiment]
        first, second = (set(rows_of(part, arm).task) for arm in PAIRED)
        both = first & second
        for task in [t for t in part.task.unique() if t in both]:
            for split, level, metric in COMPARED:
                row = paired_comparison(
                    metrics, experiment, split=split, level=level, metric=metric, task=task
                )
                if row is not None:
                    out.append(row)
    return pd.DataFrame(out)


def samples_per_generation(run_dir: str | Path | None = None) -> int:
    """Samples one PathNet generation trains on: 2 paths x ``minibatches`` x
    ``batch_size`` of the run's ``config.yaml`` evolution settings (defaults: 50 x 16)."""

    evolution: dict = {}
    path = Path(run_dir) / "config.yaml" if run_dir is not None else None
    if path is not None and path.is_file():
        import yaml

        evolution = (yaml.safe_load(path.read_text()) or {}).get("evolution") or {}
    defaults = EvolutionConfig()
    minibatches = int(evolution.get("minibatches", defaults.minibatches))
    batch_size = int(evolution.get("batch_size", defaults.batch_size))
    return PATHS_PER_GENERATION * minibatches * batch_size


def with_budgets(summary: pd.DataFrame, metrics: pd.DataFrame, per_generation: int) -> pd.DataFrame:
    """``summary`` plus a ``samples`` row (``BUDGET``) for every PathNet arm that lacks
    one: its final generation x ``per_generation`` samples, per run. Arms whose rows
    carry no budget (e.g. ``logreg``, or baselines written before budgets were recorded)
    get none."""

    split, level, metric = BUDGET
    final = final_values(metrics)
    train = final[(final.split == split) & (final.level == level)]
    train = train[train.arm.isin(PATHNET_ROWS)]
    if train.empty:
        return summary
    has = summary[(summary.split == split) & (summary.level == level) & (summary.metric == metric)]
    known = set(zip(has.experiment, has.arm, has.task, strict=True))
    runs = (
        train.groupby(["experiment", "arm", "task", "iteration", "fold"], sort=False)["generation"]
        .max()
        .reset_index()
    )
    rows = []
    for (experiment, arm, task), part in runs.groupby(["experiment", "arm", "task"], sort=False):
        if (experiment, arm, task) in known:
            continue
        values = part["generation"].to_numpy(np.float64) * per_generation
        rows.append(
            dict(
                experiment=experiment, arm=arm, task=task, split=split, level=level,
                metric=metric, mean=float(values.mean()),
                std=float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                n=len(values), n_folds=part["fold"].nunique(),
                generation=int(part["generation"].max()),
            )
        )  # fmt: skip
    if not rows:
        return summary
    return pd.concat([summary, pd.DataFrame(rows)], ignore_index=True)


def _budgets(part: pd.DataFrame) -> dict[tuple[str, str], tuple[float, float]]:
    """(arm, task) -> (mean, std) samples of one experiment's summary rows."""
    split, level, metric = BUDGET
    rows = part[(part.split == split) & (part.level == level) & (part.metric == metric)]
    return {(r.arm, r.task): (float(r.mean), float(r.std)) for r in rows.itertuples(index=False)}


def budget_flags(
    budgets: dict[tuple[str, str], tuple[float, float]],
) -> tuple[tuple[str, str] | None, set[tuple[str, str]]]:
    """The reference budget's (arm, task) and the compared rows whose budget differs.

    The reference is PathNet's ``transfer`` arm, else ``scratch``, else the most common
    budget. The ``source`` arm (another task: the header states its budget) is never
    flagged; a row whose runs had different budgets always is.
    """
    compared = {k: v for k, v in budgets.items() if not is_shared_unit(k[0])}
    if not compared:
        return None, set()
    ref = next((k for arm in PAIRED for k in compared if k[0] == arm.name), None)
    if ref is None:
        counts = pd.Series([round(m) for m, _ in compared.values()]).value_counts()
        common = max(v for v, c in counts.items() if c == counts.max())
        ref = max((k for k, (m, _) in compared.items() if round(m) == common), key=str)
    target = round(compared[ref][0])
    flagged = {k for k, (m, sd) in compared.items() if round(m) != target or sd > 0}
    return ref, flagged


def _samples_cell(budget: tuple[float, float] | None) -> str:
    if budget is None:
        return "n/a"
    mean, std = budget
    return f"{mean:,.0f}" if std == 0 else f"{mean:,.0f} ± {std:,.0f} (mixed)"


def _fmt(mean: float, std: float, n: int, metric: str) -> str:
    if metric == "parameters":
        return f"{mean:,.0f}"
    if metric == "train_seconds":
        return f"{mean:.1f} ± {std:.1f}"
    return f"{mean:.3f} ± {std:.3f}" if n > 1 else f"{mean:.3f}"


def format_p(p: float) -> str:
    """A p-value for a table: ``< 0.001`` below 0.001 (never ``0``), 3 significant digits
    otherwise, ``n/a`` when undefined (e.g. all differences zero)."""
    if p is None or not math.isfinite(p):
        return "n/a"
    return "< 0.001" if p < 0.001 else f"{p:.3g}"


def _arm_key(arm: str) -> tuple[int, str]:
    return (PATHNET_ROWS.index(arm) if arm in PATHNET_ROWS else len(PATHNET_ROWS), arm)


def markdown_tables(summary: pd.DataFrame, comp: pd.DataFrame) -> str:
    """One table per experiment set (rows: arms) plus its transfer-minus-scratch tests."""
    lines: list[str] = []
    for experiment in summary["experiment"].unique():
        part = summary[summary.experiment == experiment]
        cols = [
            c
            for c in TABLE_COLUMNS
            if ((part.split == c[0]) & (part.level == c[1]) & (part.metric == c[2])).any()
        ]
        budgets = _budgets(part)
        ref, flagged = budget_flags(budgets)
        samples = ["samples"] if budgets else []
        lines += [
            f"## {experiment}",
            "",
            "| arm | task | runs | folds | " + " | ".join(samples + [c[3] for c in cols]) + " |",
            "|---|---|---|---|" + "---|" * (len(samples) + len(cols)),
        ]
        groups = sorted(
            part.groupby(["arm", "task"], sort=False), key=lambda kv: _arm_key(kv[0][0])
        )
        for (arm, task), rows in groups:
            cells = []
            for split, level, metric, _ in cols:
                r = rows[(rows.split == split) & (rows.level == level) & (rows.metric == metric)]
                cells.append(
                    _fmt(r["mean"].iloc[0], r["std"].iloc[0], int(r["n"].iloc[0]), metric)
                    if len(r)
                    else ""
                )
            if budgets:
                cells.insert(0, _samples_cell(budgets.get((arm, task))))
            main = rows[
                (rows.split == "test") & (rows.level == "frame") & (rows.metric == "accuracy")
            ]
            main = main if len(main) else rows
            n = int(main["n"].max())
            folds = int(main["n_folds"].max())
            label = f"{arm} {DAGGER}" if (arm, task) in flagged else arm
            lines.append(f"| {label} | {task} | {n} | {folds} | " + " | ".join(cells) + " |")
        lines.append("")
        if flagged:
            others = ", ".join(
                f"{arm} {_samples_cell(budgets[(arm, task)])}"
                for (arm, task), _ in groups
                if (arm, task) in flagged
            )
            gens = rows_of(part, ref[0])
            gens = gens[gens.metric == BUDGET[2]]["generation"]
            unit = (
                f" ({int(gens.max())} generations)" if ref[0] in PATHNET_ROWS and len(gens) else ""
            )
            lines += [
                f"{DAGGER} Another training budget than {ref[0]}'s "
                f"{_samples_cell(budgets[ref])} samples per task{unit}: {others}. These rows "
                "are not a like-for-like comparison with the others.",
                "",
            ]
        unknown = list(
            dict.fromkeys(
                arm for (arm, task), _ in groups if budgets and (arm, task) not in budgets
            )
        )
        if unknown:
            why = (
                ["logreg fits to convergence, not to a sample budget"]
                if "logreg" in unknown
                else []
            )
            shots = [a for a in unknown if a.endswith("zeroshot") or a == ZERO_SHOT]
            if shots:
                why.append(f"{', '.join(shots)}: no training on the destination at all")
            older = [a for a in unknown if a != "logreg" and a not in shots]
            if older:
                why.append(f"{', '.join(older)}: rows written before budgets were recorded")
            lines += [f"n/a: no sample budget ({'; '.join(why)}).", ""]
        c = comp[comp.experiment == experiment] if len(comp) else comp
        if len(c):
            lines += [
                "Transfer minus scratch, paired by fold:",
                "",
                "| task | metric | transfer | scratch | difference | folds (wins/losses) "
                "| Wilcoxon p | paired t p |",
                "|---|---|---|---|---|---|---|---|",
            ]
            for r in c.itertuples():
                lines.append(
                    f"| {r.task} | {r.split} {r.level} {r.metric} | {r.mean_a:.3f} | "
                    f"{r.mean_b:.3f} | "
                    f"{r.mean_diff:+.3f} ± {r.std_diff:.3f} | {r.n_folds} ({r.wins}/{r.losses}) | "
                    f"{format_p(r.p_wilcoxon)} | {format_p(r.p_ttest)} |"
                )
            lines.append("")
    return "\n".join(lines)


def write_report(
    run_dir: str | Path,
    metrics: pd.DataFrame | None = None,
    header: str = "",
    sections: Sequence[str] = (),
    figures: Sequence[Path] = (),
) -> dict[str, Path]:
    """Write ``summary.csv``, ``paired_tests.csv``, ``summary.md`` and ``summary.tex``
    (the same tables for LaTeX, ``booktabs``) into ``run_dir``, each once.

    ``sections``: more Markdown sections after the tables (calibration, pooled members,
    the cross-dataset table), their tables in the LaTeX file too; ``figures``: images
    under ``run_dir/figures`` the Markdown report shows at its end."""
    run_dir = Path(run_dir)
    if metrics is None:
        metrics = read_metrics(run_dir / "metrics.csv")
    if metrics.empty:
        raise ValueError(f"{run_dir}: metrics.csv has no rows; nothing to report")
    summary = with_budgets(summarise(metrics), metrics, samples_per_generation(run_dir))
    comp = comparisons(metrics)
    paths = {
        "summary_csv": run_dir / "summary.csv",
        "paired_csv": run_dir / "paired_tests.csv",
        "summary_md": run_dir / "summary.md",
        "summary_tex": run_dir / "summary.tex",
    }
    summary.to_csv(paths["summary_csv"], index=False)
    comp.to_csv(paths["paired_csv"], index=False)
    text = [header.rstrip(), ""] if header else []
    text += [
        "Values are mean ± std over folds x iterations of the FINAL generation. `test` = "
        "held-out subjects of each fold (subject-independent); `train (paper-style)` = the "
        "fraction of training minibatch samples the tournament winner classified correctly "
        "in its last generation, the figure the paper reports.",
        "",
        f"Paired test: {PAIRED_TEST}.",
        "",
        markdown_tables(summary, comp),
    ]
    markdown = "\n".join(text)
    tex = latex_tables(markdown_tables(summary, comp))
    for section in (s for s in sections if s):
        markdown = markdown.rstrip() + "\n\n" + section
        tex += "\n" + latex_tables(section)
    if figures:
        links = "\n".join(f"![{p.stem}](figures/{p.name})" for p in figures)
        markdown += "\n## Figures\n\n" + links + "\n"
    paths["summary_md"].write_text(markdown)
    paths["summary_tex"].write_text(tex)
    return paths
