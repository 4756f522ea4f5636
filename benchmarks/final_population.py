"""How sure is the final choice of a path? Every member of a task's final population, scored.

A task ends by keeping the member with the best accuracy on its selection data (a fixed
subset of training faces, ``evolution.selection_samples``). This loads a FER-2013 source's
checkpoint taken at its last generation (before that choice: ``runs/<study>/checkpoints/
source__fer2013__fold1__it1/state.pt``), and scores every member on the selection faces,
on ``--extra`` other training faces (seeded) and on FER-2013's test split (held out; to
explain the choice, never to make it). Prints one line per member and which member each
rule picks: the plain arg-max on the selection faces, ``pick_best`` (ties to the consensus
genotype), the arg-max on the larger training sample and, with ``--extra all``, ``pick_best``
on every training face: the choice ``evolution.selection_samples: null`` makes (the value
of ``selection_samples`` changes nothing else of a run: tests/test_evolution_final_choice.py).

``--zero-shot`` adds every face of CK+48 and JAFFE (people in none of FER-2013; network
alone, training prior, no mirror): what each pick would carry to new people.

Run: ``.venv/bin/python benchmarks/final_population.py CHECKPOINT [--extra 4096|all]
[--zero-shot]``.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.evolution.checkpoint import load_checkpoint
from pathnet_fer.evolution.evaluate import path_accuracy, pick_best
from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds

CHUNK = 512


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument(
        "--extra", default="4096", help="other training faces: a number, or all of them"
    )
    parser.add_argument(
        "--zero-shot", action="store_true", help="also score every face of CK+48 and JAFFE"
    )
    args = parser.parse_args()
    net, task, _ = load_checkpoint(args.checkpoint, device="cpu")
    if task is None:
        raise SystemExit(f"{args.checkpoint} holds no task")
    config = load_config(CONFIG_DIR / "pretrained.yaml")
    d = load_dataset(config, "fer2013")
    folds = dataset_folds(config, "fer2013", d)[0]
    x = torch.from_numpy(d.faces.images.reshape(len(d.y), -1)).float() / 255
    y = torch.as_tensor(np.array(d.y))
    train = torch.as_tensor(folds.train_index)
    x_tr, y_tr = x[train], y[train]
    if abs(float(x_tr.sum()) - task.data_fingerprint[0]["sum"]) > 1e-4 * float(x_tr.sum()):
        raise SystemExit("these training faces are not the task's (data fingerprint differs)")
    pop = task.population[0]

    def correct(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        """Faces each member gets right ``(P,)``, exact (whole numbers)."""
        return sum(
            (path_accuracy(net, task, 0, pop, xs[i : i + CHUNK], ys[i : i + CHUNK])
             * len(ys[i : i + CHUNK])).round()
            for i in range(0, len(ys), CHUNK)
        )  # fmt: skip

    def accuracy(xs: torch.Tensor, ys: torch.Tensor) -> torch.Tensor:
        return correct(xs, ys) / len(ys)

    sel = task.selection_rows[0]
    rest = torch.tensor(sorted(set(range(len(train))) - set(sel.tolist())), dtype=torch.long)
    if len(rest) == 0:
        raise SystemExit(
            f"the task chose on all {len(train)} training faces (selection_samples: null): "
            "there are no other training faces to compare its choice on"
        )
    extra = rest[torch.randperm(len(rest), generator=torch.Generator().manual_seed(0))]
    if args.extra != "all":
        extra = extra[: int(args.extra)]
    start = time.perf_counter()
    right_sel, right_extra = correct(x_tr[sel], y_tr[sel]), correct(x_tr[extra], y_tr[extra])
    a_sel, a_extra = right_sel / len(sel), right_extra / len(extra)
    seconds = time.perf_counter() - start
    test = torch.as_tensor(folds.test_index)
    a_test = accuracy(x[test], y[test])
    shown = {f"selection ({len(sel)})": a_sel, f"training ({len(extra)})": a_extra}
    shown[f"test ({len(test)})"] = a_test
    for name in ("ckplus48", "jaffe") if args.zero_shot else ():
        other = load_dataset(config, name)
        xs = torch.from_numpy(other.faces.images.reshape(len(other.y), -1)).float() / 255
        shown[f"{name} ({len(other.y)})"] = accuracy(xs, torch.as_tensor(np.array(other.y)))
    print(" | ".join(["member", "genotype", *shown]))
    for i in range(len(pop)):
        print(" | ".join([str(i), str(pop[i].tolist()), *(f"{a[i]:.3f}" for a in shown.values())]))
    rules = {
        "arg-max on the selection faces": int(a_sel.argmax()),
        "pick_best (ties to the consensus)": int(pick_best(a_sel[None], pop[None])[0]),
        f"arg-max on the {len(extra)} other training faces": int(a_extra.argmax()),
    }
    if args.extra == "all":
        a_all = (right_sel + right_extra) / len(train)
        rules[f"pick_best on all {len(train)} training faces (selection_samples: null)"] = int(
            pick_best(a_all[None], pop[None])[0]
        )
    n_faces = len(sel) + len(extra)
    print(f"scoring {len(pop)} members on {n_faces} training faces: {seconds:.0f} s")
    for rule, i in rules.items():
        scores = ", ".join(f"{k.split(' ')[0]} {a[i]:.3f}" for k, a in list(shown.items())[2:])
        print(f"{rule}: member {i}, {scores}")


if __name__ == "__main__":
    main()
