"""CLI sub-commands of the ``baselines`` stage: ``pathnet-fer baseline CONFIG ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from pathnet_fer.baselines.names import CNN_MODELS
from pathnet_fer.yaml_config.options import add_set_option

HELP = """\
Train the baselines on an experiment config's data, subject folds and budget, and write
their rows into metrics.csv / summary.md in the same format as PathNet runs (give --out
the PathNet run's directory to get one table with every arm).

Models: CNNs (new 6-way head on ImageNet backbones) {cnns};
  mlp (= mlp-scratch + mlp-finetune: an MLP the size of one PathNet path, trained from
  scratch / fine-tuned from the source task), mlp-zeroshot (the source MLP applied to the
  destination untrained, classes matched by emotion name), cnn (= cnn-scratch, cnn-head,
  cnn-full, cnn-zeroshot: a plain CNN the size of one conv PathNet path, from scratch /
  pre-trained on the set's source task then head-only or fully fine-tuned / zero-shot;
  each arm may be named alone), progressive (Progressive Neural Networks), logreg
  (scikit-learn logistic regression on the destination's standardised pixels).
Source models are trained once per source task (once per iteration for a fixed-split
  source such as FER-2013) and saved under OUT/source_models/: a rerun reuses them.
Weights (--weights): auto (offline packages, or torchvision files already cached; nothing
  downloaded) | torchvision (download; needs internet) | package | none (random init,
  reported as MODEL-scratch) | PATH | model=SPEC,model=SPEC. Missing weights are an
  error naming every option, never a silent random init.
"""


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``baseline``."""
    p = sub.add_parser(
        "baseline",
        help="fine-tuned CNNs, MLP and progressive-network baselines on an experiment's folds",
        description=HELP.format(cnns=", ".join(CNN_MODELS)),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "config", help="experiment config: a YAML path or a shipped name (demo, ckplus-jaffe)"
    )
    p.add_argument(
        "--models",
        help="comma-separated models (default: the config's baselines.models, else "
        "mobilenet_v2,efficientnet_lite0,cifar,mlp,progressive,logreg)",
    )
    p.add_argument("--finetune", help="head | full | head,full (default head)")
    p.add_argument("--weights", help="weights spec (see above); default auto")
    p.add_argument(
        "--out",
        type=Path,
        help="run directory (default runs/<config name>-baselines); a PathNet run directory "
        "gets the baselines in OUT/baselines/ and its report rebuilt with every arm",
    )
    add_set_option(p, "evolution.generations=50 or baselines.input_size=112")
    p.add_argument(
        "--iterations",
        type=int,
        help="iterations (default: baselines.iterations, else the protocol's)",
    )
    p.add_argument("--folds", help="only these folds (1-based, as in metrics.csv), e.g. 1,2")
    p.add_argument(
        "--max-samples", type=int, help="cap on samples per task (default: the PathNet budget)"
    )
    p.add_argument(
        "--input-size", type=int, help="CNN input side (default: each backbone's native size)"
    )
    p.add_argument("--quiet", action="store_true", help="no per-run progress lines")
    p.set_defaults(func=run_command)


def load_with_baselines(config: str, overrides: list[str]):
    """(ExperimentConfig, raw ``baselines:`` mapping): the section is read here, so the
    experiment config stays valid for ``pathnet-fer`` commands that do not know it."""
    from pathnet_fer.experiments.config import apply_overrides, load_raw
    from pathnet_fer.experiments.config_loading import build_config

    raw = apply_overrides(load_raw(config), overrides)
    section = raw.pop("baselines", None) or {}
    return build_config(raw), section


def run_command(args: argparse.Namespace) -> int:
    from pathnet_fer.baselines.runner import run_baselines
    from pathnet_fer.baselines.settings import BaselineConfigError, BaselineSettings
    from pathnet_fer.baselines.weights import WeightsNotFoundError
    from pathnet_fer.yaml_config.errors import ConfigError

    try:
        config, section = load_with_baselines(args.config, args.overrides)
        cli = {
            "models": args.models,
            "finetune": args.finetune,
            "weights": args.weights,
            "iterations": args.iterations,
            "folds": args.folds,
            "max_samples": args.max_samples,
            "input_size": args.input_size,
        }
        section.update({k: v for k, v in cli.items() if v is not None})
        if isinstance(section.get("folds"), str):
            section["folds"] = [int(f) for f in section["folds"].split(",") if f.strip()]
        settings = BaselineSettings.from_dict(section)
        out = args.out or Path("runs") / f"{config.name}-baselines"
        pathnet_run = (out / "config.yaml").exists()
        target = out / "baselines" if pathnet_run else out
        run_baselines(config, settings, target, progress=None if args.quiet else print)
        if pathnet_run:
            summary = add_to_pathnet_run(out, target / "metrics.csv")
            print(f"added the baseline arms to {out}: {summary}")
            return 0
    except (
        ConfigError,
        BaselineConfigError,
        WeightsNotFoundError,
        FileNotFoundError,
        ValueError,
    ) as err:
        print(f"pathnet-fer baseline: error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out / 'metrics.csv'} and {out / 'summary.md'}")
    return 0


def add_to_pathnet_run(run_dir: Path, metrics_csv: Path) -> Path:
    """Put baseline rows beside a PathNet run's job outputs and rebuild its report.

    A copy under ``parts/baselines/`` keeps their arms in every later ``pathnet-fer report``.
    """
    from pathnet_fer.experiments.finalise import add_metrics, finalise
    from pathnet_fer.experiments.run_dir import RunLock

    with RunLock(run_dir):  # never while an experiment command writes the run
        add_metrics(run_dir, metrics_csv, part="baselines")
        return finalise(run_dir).summary_md
