"""The conv paths' training recipe, one ingredient at a time, on FER-2013 test.

Each arm is the demo's FER-2013 source (conv PathNet, FER-2013's training split, its
test split held out, 6 classes) trained for the same number of generations with the
real ``pathnet-fer experiment`` command and one change of ``evolution.*`` settings (or,
for the FER+ arms, FER+'s training split as the source, scored zero-shot on FER-2013
test with FER-2013's own labels);
the destination task is a 1-generation stub (only the source's figure is read) and the
final fit is off. Runs resume: an arm whose run directory holds a finished study is
read, not re-run.

    python benchmarks/recipe_ablation.py --generations 100             # every arm
    python benchmarks/recipe_ablation.py --generations 100 --arms base flip+shift

Prints a markdown table: arm, its settings, FER-2013 test accuracy / macro-F1 / top
share at the last generation, the source's evolving seconds (noisy on a shared machine:
the arms run one after another in this process's machine) and samples seen.
Results: docs/results-fer2013.md, "Training recipe".
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

ARMS: dict[str, dict[str, object]] = {
    "base": {},
    "flip": {"augment_flip": True},
    "flip+shift": {"augment_flip": True, "augment_shift": 0.1},
    "flip+shift+rot+zoom": {
        "augment_flip": True,
        "augment_shift": 0.1,
        "augment_rotate": 10.0,
        "augment_scale": 0.1,
    },
    # momentum 0.9 at the base rate 0.02 diverges (NaN within 100 generations); at 0.002
    # its effective step lr / (1 - momentum) equals the base's
    "momentum": {"momentum": 0.9, "lr": 0.002},
    "weight-decay": {"weight_decay": 5e-4},
    "cosine": {"lr_schedule": "cosine"},
    "label-smoothing": {"label_smoothing": 0.1},
    # FER+ (the same training faces, 10 annotators' votes): its majority label, then its
    # vote shares as soft targets; read as the source applied zero-shot to FER-2013 test
    "ferplus-majority": {"data": "ferplus"},
    "ferplus-soft": {"data": "ferplus", "soft_labels": True},
    # capacity (issue 22, item 2): a module = two 3x3 conv + BN + ReLU; wider plain conv
    "block": {"pathnet.module": "block"},
    "channels-16-32-64": {"pathnet.channels": "[16, 32, 64]"},
    "all": {
        "augment_flip": True,
        "augment_shift": 0.1,
        "momentum": 0.9,
        "lr": 0.002,
        "weight_decay": 5e-4,
        "lr_schedule": "cosine",
    },
}


def run_arm(name: str, settings: dict[str, object], generations: int, out: Path) -> Path:
    run_dir = out / name
    cmd = [
        sys.executable, "-m", "pathnet_fer.cli", "experiment", "demo",
        "--out", str(run_dir),
        "--set", f"protocol.source_generations={generations}",
        "--set", "evolution.generations=1",
        "--set", "protocol.final_fit=false",
        "--set", f"protocol.eval_every={max(1, generations // 4)}",
        "--set", "protocol.reuse_sources=false",
        "--set", "logging.progress=false",
        "--set", "sets=[{name: fer2013->jaffe, source: fer2013, destination: jaffe}]",
    ]  # fmt: skip
    settings = dict(settings)
    if settings.pop("data", "fer2013") == "ferplus":
        soft = str(settings.pop("soft_labels", False)).lower()
        cmd += [
            "--set", "datasets.ferplus={adapter: ferplus, root: ferplus, folds: fixed, "
            f"splits: [train, test], soft_labels: {soft}}}",
            "--set", "sets=[{name: ferplus->fer2013, source: ferplus, destination: fer2013}]",
        ]  # fmt: skip
    for key, value in settings.items():
        key = key if "." in key else f"evolution.{key}"  # other sections spelt out
        cmd += ["--set", f"{key}={str(value).lower() if isinstance(value, bool) else value}"]
    if not (run_dir / "summary.md").exists():
        subprocess.run(cmd, check=False)  # a failed arm is reported, the others still run
    return run_dir


def source_row(run_dir: Path) -> dict[str, float]:
    """FER-2013 test figures of the source: its own held-out split, or (a FER+ source)
    the source applied zero-shot to FER-2013 test."""
    m = pd.read_csv(run_dir / "metrics.csv")
    src = m[m.arm == "source"]
    last = int(src.generation.max())
    if "fer2013" in set(src.task):
        test = src[(src.split == "test") & (src.level == "frame") & (src.generation == last)]
    else:
        test = m[(m.arm == "zero-shot") & (m.task == "fer2013") & (m.level == "frame")]
    value = dict(zip(test.metric, test.value, strict=False))
    seconds = src[src.metric == "train_seconds"].value.max()
    return {
        "generation": last,
        "accuracy": value["accuracy"],
        "macro_f1": value["macro_f1"],
        "top_share": value["top_share"],
        "seconds": float(seconds),
    }


def markdown(table: pd.DataFrame) -> str:
    """A markdown table (floats to 3 decimals, seconds to whole ones)."""

    def cell(key: str, value: object) -> str:
        if key == "seconds":
            return f"{value:.0f}"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    for _, row in table.iterrows():
        lines.append("| " + " | ".join(cell(k, v) for k, v in row.items()) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--arms", nargs="*", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--out", type=Path, default=Path("runs/recipe-ablation"))
    args = parser.parse_args()
    rows = []
    for name in args.arms:
        run_dir = run_arm(name, ARMS[name], args.generations, args.out / f"g{args.generations}")
        row = {"arm": name, "settings": ", ".join(f"{k}={v}" for k, v in ARMS[name].items())}
        try:
            rows.append({**row, **source_row(run_dir)})
        except (OSError, KeyError, ValueError) as err:
            print(f"arm {name}: no figure ({type(err).__name__}: {err}); see {run_dir}/log.txt")
            continue
        print(pd.DataFrame(rows[-1:]).to_string(index=False), flush=True)
    table = pd.DataFrame(rows)
    samples = 2 * 50 * 16 * args.generations
    print(f"\nFER-2013 test, 6 classes, {args.generations} generations ({samples:,} samples seen)")
    print(markdown(table))


if __name__ == "__main__":
    main()
