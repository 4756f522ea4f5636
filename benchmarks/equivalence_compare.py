"""Compare two output trees of ``equivalence.sh``: prints, per study, whether metrics.csv is
equal once the wall-time rows (``train_seconds``) are left out, whether every model file has
the same tensors and digests, and whether the other tables are byte-identical (the
cross-dataset table after the checkout path of the shipped model is masked)."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pandas as pd
import torch

ROW_KEY = [
    "experiment",
    "iteration",
    "fold",
    "task",
    "arm",
    "split",
    "level",
    "metric",
    "generation",
]
MODEL_DIRS = ("models", "source_models")
TABLES = ("confusion.csv", "calibration.csv", "folds.csv", "paired_tests.csv")


def _masked(path: Path) -> str:
    return re.sub(r"\S*/src/pathnet_fer/pretrained/", "<checkout>/", path.read_text())


def compare(a: Path, b: Path) -> bool:
    ok = True
    for run in sorted(p.name for p in a.iterdir() if p.is_dir()):
        da, db = pd.read_csv(a / run / "metrics.csv"), pd.read_csv(b / run / "metrics.csv")
        # Rows in a canonical order: jobs on a pool write theirs as they finish.
        keep = lambda d: (  # noqa: E731
            d[d.metric != "train_seconds"]
            .sort_values(ROW_KEY, kind="stable")
            .reset_index(drop=True)
        )
        same = keep(da).equals(keep(db))
        print(
            f"{run}: metrics.csv {len(da)} vs {len(db)} rows; equal without train_seconds: {same}"
        )
        ok &= same
        # A study's model files; a baselines run's source models (same state_dict key).
        files_a, files_b = (
            sorted(p.relative_to(d / run) for m in MODEL_DIRS for p in (d / run / m).rglob("*.pt"))
            for d in (a, b)
        )
        if files_a != files_b:
            print(f"  model files differ: {sorted(set(files_a) ^ set(files_b))}")
            ok = False
            continue
        equal = 0
        for rel in files_a:
            pa = torch.load(a / run / rel, weights_only=True)
            pb = torch.load(b / run / rel, weights_only=True)
            sa, sb = pa["state_dict"], pb["state_dict"]
            eq = sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
            eq = eq and all(pa.get(k) == pb.get(k) for k in ("weights_sha256", "content_sha256"))
            if not eq:
                print(f"  DIFFERENT: {rel}")
            equal += eq
        ok &= equal == len(files_a)
        print(
            f"  model files: {equal}/{len(files_a)} identical (tensors, weight and content digests)"
        )
        for table in (*TABLES, "cross_dataset.csv"):
            if (a / run / table).exists():
                same = _masked(a / run / table) == _masked(b / run / table)
                print(f"  {table}: {'identical' if same else 'DIFFERENT'}")
                ok &= same
    print("ALL EQUAL" if ok else "DIFFERENCES")
    return ok


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("a", type=Path)
    p.add_argument("b", type=Path)
    args = p.parse_args()
    return 0 if compare(args.a, args.b) else 1


if __name__ == "__main__":
    raise SystemExit(main())
