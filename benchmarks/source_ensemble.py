"""Do several independently evolved FER-2013 sources, averaged, beat the best one alone?

An ensemble is the usual cheap gain of FER-2013 papers. This scores each model given
(``--models FILE ...``: source model files of studies run with different recipes or
seeds, e.g. ``runs/*/models/sources/source__fer2013__fold1__it1.pt``) on faces none of them
trained on, as ``calibration_shift.py`` loads them (FER-2013 test; every face of CK+48 and
JAFFE; the CREMA-D sample's frames), each face averaged with its mirror image, and then
every combination of two or more: the arg-max of the mean of the members' log-probabilities
(a geometric mean; no weight is fitted, so nothing looks at the faces scored). Prints one
line per model or combination: accuracy per dataset. ``--prior train|uniform`` scores every
member under the same class prior (default ``file``: each file's own default, which differs
between a shipped file, uniform, and a study's source file, train).

Only for models that learnt none of these datasets' people (FER-2013 sources do not).
Run: ``.venv/bin/python benchmarks/source_ensemble.py --models A.pt B.pt [C.pt ...]``
(about a minute per model on 2 cores).
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path

import numpy as np

from calibration_shift import faces
from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.formats.model_file import ModelFileError, load_model


def label(path: Path) -> str:
    """A short name for a model file: its study's folder (``runs/<study>/models/...``)."""
    parts = path.resolve().parts
    return parts[-4] if len(parts) >= 4 and parts[-3] == "models" else path.stem


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, nargs="+", required=True, help="model files")
    parser.add_argument(
        "--prior", choices=("file", "train", "uniform"), default="file",
        help="the class prior every member assumes (default: each file's own)",
    )  # fmt: skip
    args = parser.parse_args()
    if len(args.models) < 2:
        parser.error("an ensemble needs at least two --models")
    config = load_config(CONFIG_DIR / "pretrained.yaml")
    log_p: dict[str, dict[str, np.ndarray]] = {}
    labels: dict[str, np.ndarray] = {}
    for path in args.models:
        name = label(path)
        model = load_model(path).mirrored(True)
        if args.prior != "file":
            try:
                model = model.with_prior(args.prior)
            except ModelFileError as err:
                parser.error(str(err))
        sets = faces(model, config)
        log_p[name] = {k: np.log(np.clip(p, 1e-9, 1.0)) for k, (p, _) in sets.items()}
        labels = {k: y for k, (_, y) in sets.items()}
    print("models | " + " | ".join(f"{k} ({len(y)})" for k, y in labels.items()))
    names = list(log_p)
    for k in range(1, len(names) + 1):
        for combo in itertools.combinations(names, k):
            accs = [
                float((np.mean([log_p[m][d] for m in combo], 0).argmax(1) == y).mean())
                for d, y in labels.items()
            ]
            print("+".join(combo) + " | " + " | ".join(f"{a:.3f}" for a in accs), flush=True)


if __name__ == "__main__":
    main()
