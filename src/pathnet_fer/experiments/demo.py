"""``pathnet-fer demo``: the main job on a fresh machine, end to end in a few minutes.

Preprocesses FER-2013, CK+48 and JAFFE (cached after the first time), runs
``configs/demo.yaml`` (FER-2013 -> CK+48 and -> JAFFE, shortened, with the final fit on
every subject), writes the report and figures, scores the deployed model beside the
shipped pretrained one on the same faces (the report's last table), and prints where
everything is and the ``pathnet-fer predict`` command for the deployed model.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.cross_dataset import recommended
from pathnet_fer.experiments.finalise import ExperimentResult
from pathnet_fer.experiments.run_compat import RunDirError, RunDirInUseError
from pathnet_fer.experiments.runner import run_experiment

DEMO_CONFIG = CONFIG_DIR / "demo.yaml"


def run_demo(
    out: str | Path = "runs/demo",
    overrides: list[str] | None = None,
    config: str | Path = DEMO_CONFIG,
    restart: bool = False,
    quiet: bool = False,
) -> ExperimentResult:
    """Run the demo config into ``out`` and print the summary's location and tables."""
    cfg = load_config(config, overrides)
    out = Path(out)
    root = cfg.resolved_data_root()
    clip_sets = {name: root / name for name in CLIP_SETS if (root / name).is_dir()}
    try:
        result = run_experiment(cfg, out, restart=restart, quiet=quiet, clip_sets=clip_sets)
    except RunDirError as err:
        # An older demo (other settings or code) is in the way: keep it, start afresh.
        if isinstance(err, RunDirInUseError) or not (out / "config.yaml").exists():
            raise
        stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
        kept = out.with_name(f"{out.name}.old-{stamp}")
        out.rename(kept)
        print(
            f"{out} held a demo with other settings ({str(err).splitlines()[1].strip()} ...);"
            f" moved it to {kept}",
            file=sys.stderr,
        )
        result = run_experiment(cfg, out, quiet=quiet, clip_sets=clip_sets)
    path = result.run_dir / "cross_dataset.csv"
    table = pd.read_csv(path) if path.exists() else pd.DataFrame()
    if quiet:
        print(f"Report: {result.summary_md}")
    else:
        curves = [p for p in result.figures if p.name.startswith("learning_curves")]
        print(f"\nDemo finished in {result.seconds:.0f} s.", file=sys.stderr)
        print(result.summary_md.read_text().split("\n## Figures")[0])
        print(f"Report:  {result.summary_md}")
        print(f"Tables:  {result.run_dir / 'summary.csv'}  {result.run_dir / 'metrics.csv'}")
        print(
            f"Figures: {result.run_dir / 'figures'} ({len(result.figures)} files, e.g. "
            f"{curves[0].name if curves else '-'})"
        )
        print(f"Models:  {result.run_dir / 'models'}")
    deployed = deployed_model(result.run_dir, table)
    if deployed is not None:
        model, prior = deployed
        clips = cfg.resolved_data_root() / "crema-d-sample" / "VideoFlash"
        print(
            f"\nThis run's model with the highest mean accuracy on people it never saw "
            f"(the report's cross-dataset table{_shipped_note(table)}), with the class "
            f"prior it was measured with:\n"
            f"  pathnet-fer predict --model {model} --prior {prior} {clips}/*.flv "
            f"--out predictions.csv\n"
            f"  pathnet-fer predict --model {model} --info\n"
            f"  pathnet-fer evaluate {model} --prior {prior} --dataset crema-d-sample"
            f"   # per-clip scores"
        )
    return result


CLIP_SETS = ("crema-d-sample",)
"""Labelled clip folders under the data root no demo model trains on: the demo scores
every candidate on them too (majority vote per clip)."""


def _shipped_note(table) -> str:
    """Says so when the shipped model beats every model of this run on new people."""

    best = recommended(table)
    if best is None or not str(best["candidate"]).startswith("shipped"):
        return ""
    return (
        f"; the shipped pretrained model does better there, {best['mean_accuracy']:.3f}, "
        "and is what `pathnet-fer predict` uses without --model"
    )


def deployed_model(run_dir: Path, table) -> tuple[Path, str] | None:
    """The model a user runs and its ``--prior``: the run's candidate with the highest mean
    accuracy on people it never saw (``cross_dataset.recommended``, each file under
    either class prior), the shipped model excluded (it is already ``predict``'s
    default)."""

    if table is None or table.empty:
        return None
    best = recommended(table[~table.candidate.str.startswith("shipped")])
    if best is None:
        return None
    path = Path(best["deploy"])
    return (path if path.is_absolute() else Path(run_dir) / path), str(best["prior"])
