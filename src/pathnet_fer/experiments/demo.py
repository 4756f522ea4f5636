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

from pathnet_fer.experiments.config import CONFIG_DIR, load_config
from pathnet_fer.experiments.runner import (
    ExperimentResult,
    RunDirError,
    RunDirInUseError,
    run_experiment,
)

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
    try:
        result = run_experiment(cfg, out, restart=restart, quiet=quiet)
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
        result = run_experiment(cfg, out, quiet=quiet)
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
    model = deployed_model(result.run_dir, cfg)
    against_shipped(result, cfg, model, quiet)
    if model is not None:
        clips = cfg.resolved_data_root() / "crema-d-sample" / "VideoFlash"
        print(
            f"\nThe deployed model ({model.parent.name}, trained on every subject):\n"
            f"  pathnet-fer predict --model {model} {clips}/*.flv --out predictions.csv\n"
            f"  pathnet-fer predict --model {model} --info\n"
            f"  pathnet-fer evaluate {model} --dataset crema-d-sample   # per-clip scores"
        )
    return result


def against_shipped(result: ExperimentResult, config, model: Path | None, quiet: bool) -> None:
    """The report's last table: the run's models and the shipped pretrained model on the
    same faces neither trained on (pretrained/compare.py); ``shipped_comparison.csv``."""
    from pathnet_fer.pretrained import NoShippedModelError, pretrained_path
    from pathnet_fer.pretrained.compare import compare_with_shipped, comparison_markdown

    try:
        shipped = pretrained_path()
    except NoShippedModelError as err:
        print(f"not compared with the shipped model: {err}", file=sys.stderr)
        return
    try:
        table = compare_with_shipped(result.run_dir, config, model, shipped)
    except ValueError as err:  # e.g. crops the shipped model cannot take (ModelFileError)
        print(f"not compared with the shipped model: {err}", file=sys.stderr)
        return
    table.to_csv(result.run_dir / "shipped_comparison.csv", index=False)
    section = comparison_markdown(table, shipped)
    md = result.summary_md
    text = md.read_text()
    head, sep, tail = text.partition("\n## Figures")
    md.write_text(f"{head.rstrip()}\n\n{section}{sep}{tail}")
    if not quiet:
        print(f"\n{section}")


def deployed_model(run_dir: Path, config) -> Path | None:
    """The model a user runs: the first set's final fit (else its best fold model)."""
    from pathnet_fer.experiments.names import slug

    folder = Path(run_dir) / "models" / slug(config.sets[0].name)
    for name in ("final.pt", "transfer_best.pt"):
        if (folder / name).exists():
            return folder / name
    return None
