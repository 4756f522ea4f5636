"""After the jobs: every part's metric rows merged into metrics.csv, then the report,
figures, calibration and cross-dataset table written from the run directory alone (so a
finished run can be re-reported without recomputing anything).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pathnet_fer.experiments.arms import is_shared_unit
from pathnet_fer.experiments.calibration import calibrate_run
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.config_loading import build_config
from pathnet_fer.experiments.cross_dataset import cross_dataset_section
from pathnet_fer.experiments.figures import all_learning_curves, confusion_figures
from pathnet_fer.experiments.metrics_log import merge_metric_files, read_metrics
from pathnet_fer.experiments.plan import ITERATION_READINGS
from pathnet_fer.experiments.pooled import member_scores, members_markdown
from pathnet_fer.experiments.report import write_report


@dataclass
class ExperimentResult:
    run_dir: Path
    metrics: pd.DataFrame
    summary_md: Path
    figures: list[Path]
    failed: list[str]
    seconds: float


def add_metrics(run_dir: Path, metrics_csv: Path, part: str) -> pd.DataFrame:
    """Put another run's metric rows (e.g. baselines) into ``run_dir/parts/<part>/``.

    ``finalise`` rebuilds ``metrics.csv`` from ``parts/*/*.csv`` only, so a run directory
    copied without its ``parts/`` (fetched from another machine) would lose its own rows:
    those are kept first as ``parts/original/``. Rows of arms that ``metrics_csv`` brings
    replace the old rows of the same arms. Returns the rows added.
    """

    run_dir = Path(run_dir)
    added = read_metrics(metrics_csv)  # validates the contract before anything is written
    parts = run_dir / "parts"
    others = [p for p in parts.glob("*/*.csv") if p.parent.name != part]
    if not others and (run_dir / "metrics.csv").exists():
        original = read_metrics(run_dir / "metrics.csv")
        original = original[~original["arm"].isin(set(added["arm"]))]
        (parts / "original").mkdir(parents=True, exist_ok=True)
        original.to_csv(parts / "original" / "metrics.csv", index=False)
    dest = parts / part / "metrics.csv"
    dest.parent.mkdir(parents=True, exist_ok=True)
    added.to_csv(dest, index=False)
    return added


def finalise(
    out: Path,
    config: ExperimentConfig | None = None,
    quiet: bool = True,
    clip_sets: dict[str, Path] | None = None,
) -> ExperimentResult:
    """Merge job outputs into metrics.csv / confusion.csv, write tables and figures."""
    import yaml

    out = Path(out)
    if config is None:
        config = build_config(yaml.safe_load((out / "config.yaml").read_text()))
    parts = sorted(
        p for p in (out / "parts").glob("*/*.csv") if not p.name.endswith("_confusion.csv")
    )
    if not parts:
        raise FileNotFoundError(f"{out} holds no job metrics yet (parts/*/*.csv)")
    metrics = merge_metric_files(parts, out / "metrics.csv")
    conf_parts = sorted((out / "parts").glob("*/*_confusion.csv"))
    confusion = (
        pd.concat([pd.read_csv(p) for p in conf_parts], ignore_index=True)
        if conf_parts
        else pd.DataFrame()
    )
    confusion.to_csv(out / "confusion.csv", index=False)
    meta = json.loads((out / "run.json").read_text()) if (out / "run.json").exists() else {}
    header = (
        f"# Experiment `{config.name}`\n\n"
        f"Seed {config.seed}; {config.protocol.iterations} iteration(s) x "
        f"{config.protocol.folds} fold(s) (subject-independent unless a dataset says "
        f"otherwise, see folds.csv); {config.generations('source')} source and "
        f"{config.generations('destination')} destination generations per task; clip vote: "
        f"{config.protocol.clip_vote}.\n\n"
        f"Iterations ({config.protocol.iteration_mode}): "
        f"{ITERATION_READINGS[config.protocol.iteration_mode]}.\n\n"
        f"Commit {meta.get('git_commit')}; versions {meta.get('versions')}.\n"
    )
    calibration = calibrate_run(out)
    unions = {n: list(spec.union) for n, spec in config.datasets.items() if spec.union}
    members = ""
    if unions:
        by_member = member_scores(calibration["sets"], unions, calibration["table"])
        by_member.to_csv(out / "pooled_members.csv", index=False)
        members = members_markdown(by_member)
    cross = cross_dataset_section(out, config, clip_sets=clip_sets) if calibration["finals"] else ""
    figures = all_learning_curves(metrics, out / "figures") + calibration["figures"]
    if not confusion.empty:
        figures += confusion_figures(confusion[~confusion.arm.map(is_shared_unit)], out / "figures")
    shown = [p for p in figures if p.name.startswith(("learning", "calibration"))]
    paths = write_report(
        out, metrics, header, sections=(calibration["markdown"], members, cross), figures=shown
    )
    return ExperimentResult(
        run_dir=out,
        metrics=metrics,
        summary_md=paths["summary_md"],
        figures=figures,
        failed=[],
        seconds=0.0,
    )
