"""Baseline table on CK+48 and JAFFE (6 subject folds), in parallel worker processes.

Runs ``pathnet_fer.baselines.runner.run_baselines`` for each (experiment set, fold, group
of models) in its own process, then merges the parts into one ``metrics.csv`` and writes
``summary.md`` with the experiments stage's report code. Groups: ``vector`` (MLP and
progressive nets, single-threaded on CPU), ``head`` (ImageNet CNNs with a new head; one
process per set so the frozen features are extracted once), ``cifar`` (the CIFAR CNN from
scratch) and ``full`` (whole-network fine-tuning, optionally with its own sample cap).

    python benchmarks/baselines_table.py --out runs/baselines-table --generations 100 \\
        --full-max-samples 32000 --jobs 8
    python benchmarks/baselines_table.py --export .devdata   # crops + weights for another machine
    python benchmarks/baselines_table.py --data .devdata ...  # use them there

Prints the summary table. Timings depend on the machine; rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import numpy as np

CONFIG = "ckplus-jaffe"
DATASETS = ("ckplus48", "jaffe")
GROUPS = {
    "vector": "mlp,progressive",
    "head": "mobilenet_v2,efficientnet_lite0",
    "cifar": "cifar",
    "full": "mobilenet_v2,efficientnet_lite0",
    "full_mobilenet": "mobilenet_v2",
}
# Head-only CNNs run one process per set: the frozen features are extracted once and
# shared by its folds. The other groups run one process per (set, fold).
PER_SET = ("head",)


def export(out: Path, overrides: list[str]) -> None:
    """Save the configured datasets' crops and the offline weights under ``out``."""
    from pathnet_fer.baselines.weights import offline_package_file
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.config_loading import load_config

    config = load_config(CONFIG, overrides)
    out.mkdir(parents=True, exist_ok=True)
    for name in DATASETS:
        d = load_dataset(config, name)
        np.savez_compressed(out / f"{name}.npz", images=d.faces.images, y=d.y,
                            subjects=d.subjects, clips=d.clips,
                            class_names=np.array(d.class_names))  # fmt: skip
    for model in ("mobilenet_v2", "efficientnet_lite0"):
        shutil.copy(offline_package_file(model), out / f"{model}.pth")


def load_exported(folder: Path) -> dict:
    from pathnet_fer.datasets.loading import LoadedDataset

    out = {}
    for name in DATASETS:
        z = np.load(folder / f"{name}.npz")
        images = z["images"]
        x = images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
        out[name] = LoadedDataset(name, SimpleNamespace(images=images), x, z["y"],
                                  z["subjects"].astype(str), z["clips"].astype(str),
                                  tuple(z["class_names"].astype(str)))  # fmt: skip
    return out


def job(args: tuple) -> str:
    """One worker: a set, a fold, a model group -> its own run directory."""
    set_name, fold, group, opts = args
    import torch

    from pathnet_fer.baselines.runner import run_baselines
    from pathnet_fer.baselines.settings import BaselineSettings
    from pathnet_fer.experiments.config_loading import load_config

    torch.set_num_threads(1)
    device = "cpu" if group == "vector" else opts["device"]
    config = load_config(CONFIG, [*opts["overrides"], f"device={device}"])
    data = load_exported(Path(opts["data"])) if opts["data"] else None
    section = {"models": GROUPS[group], "sets": [set_name], "folds": fold,
               "iterations": opts["iterations"], "cnn_threads": 1,
               "finetune": ["full" if group.startswith("full") else "head"]}  # fmt: skip
    if opts["data"]:
        section["weights"] = {m: str(Path(opts["data"]) / f"{m}.pth")
                              for m in ("mobilenet_v2", "efficientnet_lite0")}  # fmt: skip
    cap = opts.get(f"{group.split('_')[0]}_max_samples")
    if cap:
        section["max_samples"] = cap
    if opts["input_size"]:
        section["input_size"] = opts["input_size"]
    if group.startswith("full") and opts["full_input_size"]:
        section["input_size"] = opts["full_input_size"]
    tag = "all" if len(fold) > 1 else str(fold[0])
    out = Path(opts["out"]) / "parts" / f"{set_name.replace('->', '_to_')}-f{tag}-{group}"
    start = time.perf_counter()
    run_baselines(config, BaselineSettings.from_dict(section), out, datasets=data, progress=None)
    return f"{set_name} fold {fold} {group}: {time.perf_counter() - start:.0f}s"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=Path("runs/baselines-table"))
    p.add_argument("--export", type=Path, help="only save crops + weights to this folder")
    p.add_argument("--data", type=Path, help="folder written by --export (default: load data)")
    p.add_argument("--generations", type=int, default=100, help="PathNet-equivalent budget")
    p.add_argument("--full-max-samples", type=int, default=None, help="cap for full fine-tuning")
    p.add_argument("--cifar-max-samples", type=int, default=None, help="cap for the CIFAR CNN")
    p.add_argument("--full-input-size", type=int, default=None, help="input side for full")
    p.add_argument("--iterations", type=int, default=1)
    p.add_argument("--folds", type=int, default=6)
    p.add_argument("--groups", default="head,vector,cifar,full")
    p.add_argument("--only-folds", default="", help="comma-separated 1-based folds (default all)")
    p.add_argument("--sets", default="ckplus48->ckplus48,ckplus48->jaffe,jaffe->jaffe")
    p.add_argument("--cnn-sets", default="ckplus48->ckplus48,ckplus48->jaffe",
                   help="sets that run CNN groups (CNNs ignore the source task)")  # fmt: skip
    p.add_argument("--device", default="auto")
    p.add_argument("--input-size", type=int, default=None)
    p.add_argument("--jobs", type=int, default=4)
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--merge-only", action="store_true", help="only merge parts already written")
    a = p.parse_args()
    overrides = [f"evolution.generations={a.generations}", f"protocol.folds={a.folds}",
                 "protocol.iterations=1", *a.overrides]  # fmt: skip
    if a.export:
        export(a.export, overrides)
        return 0
    opts = dict(device=a.device, overrides=overrides, data=str(a.data) if a.data else "",
                iterations=a.iterations, full_max_samples=a.full_max_samples,
                cifar_max_samples=a.cifar_max_samples, full_input_size=a.full_input_size,
                input_size=a.input_size, out=str(a.out))  # fmt: skip
    groups = a.groups.split(",")
    folds = [int(f) for f in a.only_folds.split(",") if f] or list(range(1, a.folds + 1))
    tasks = [
        (s, fold_list, g, opts)
        for g in (*GROUPS,) if g in groups and not a.merge_only
        for s in a.sets.split(",")
        if g == "vector" or s in a.cnn_sets.split(",")
        for fold_list in ([folds] if g in PER_SET else [[f] for f in folds])
    ]  # fmt: skip
    start = time.perf_counter()
    with ProcessPoolExecutor(a.jobs) as pool:
        for line in pool.map(job, tasks):
            print(line, flush=True)
    from pathnet_fer.experiments.metrics_log import merge_metric_files
    from pathnet_fer.experiments.report import write_report

    metrics = merge_metric_files(sorted(a.out.glob("parts/*/metrics.csv")), a.out / "metrics.csv")
    header = (f"# Baselines on CK+48 and JAFFE\n\nBudget: {a.generations} PathNet generations "
              f"= {a.generations * 1600:,} samples per task; full fine-tuning capped at "
              f"{a.full_max_samples or 'no cap'} samples; {a.iterations} iteration(s), "
              f"{a.folds} subject folds. Wall time {time.perf_counter() - start:.0f}s.")  # fmt: skip
    paths = write_report(a.out, metrics, header=header)
    print(paths["summary_md"].read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
