"""Two model files on the same faces of new people, paired (issue 22: is a new source better?).

Scores model A and model B on the faces ``calibration_shift.py`` uses (FER-2013's test
split; every face of CK+48 and JAFFE, none in FER-2013; the CREMA-D sample's frames), both
under the same inference settings (``--mirror``, ``--prior``; default: the network alone,
its training prior), and prints per dataset: each one's accuracy and top-class share, the
paired difference B - A with an exact McNemar p, then the project's deploy rule (the mean
accuracy over FER-2013 test, CK+48 and JAFFE, each dataset once).

Run: ``.venv/bin/python benchmarks/compare_models.py A.pt B.pt [--mirror on] [--prior uniform]``
(``shipped`` names the package's model).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibration_shift import faces
from mirror_averaging import mcnemar_p
from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path

DEPLOY_RULE = ("fer2013", "ckplus48", "jaffe")


def _load(name: str, mirror: str, prior: str):
    model = load_model(pretrained_path() if name == "shipped" else Path(name))
    return model.mirrored(mirror == "on").with_prior(prior)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("a", help="model file A (the baseline), or 'shipped'")
    parser.add_argument("b", help="model file B (the candidate), or 'shipped'")
    parser.add_argument("--mirror", choices=("on", "off"), default="off")
    parser.add_argument("--prior", choices=("train", "uniform"), default="train")
    args = parser.parse_args()
    config = load_config(CONFIG_DIR / "pretrained.yaml")
    models = {k: _load(getattr(args, k), args.mirror, args.prior) for k in ("a", "b")}
    scored = {k: faces(m, config) for k, m in models.items()}
    for k, m in models.items():
        print(f"{k.upper()}: {m.path} (mirror {m.mirror}, prior {m.prior})")
    print("dataset | faces | A acc. (top share) | B acc. (top share) | B - A | McNemar p")
    means = {"a": [], "b": []}
    for name, (_, y) in scored["a"].items():
        correct, cells = {}, []
        for k in ("a", "b"):
            pred = scored[k][name][0].argmax(1)
            correct[k] = pred == y
            share = np.bincount(pred, minlength=len(models[k].class_names)).max() / len(y)
            cells.append(f"{correct[k].mean():.3f} ({share:.2f})")
            if name in DEPLOY_RULE:
                means[k].append(float(correct[k].mean()))
        diff = correct["b"].mean() - correct["a"].mean()
        print(f"{name} | {len(y)} | {cells[0]} | {cells[1]} | {diff:+.3f} | "
              f"{mcnemar_p(correct['b'], correct['a']):.3g}")  # fmt: skip
    print(
        f"deploy rule (mean over {', '.join(DEPLOY_RULE)}): A {np.mean(means['a']):.3f}, "
        f"B {np.mean(means['b']):.3f}"
    )


if __name__ == "__main__":
    main()
