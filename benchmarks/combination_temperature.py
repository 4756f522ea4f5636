"""Would one temperature on a heads model's combination calibrate it? (issue 22)

A heads model (several seeds shipped as one, or a chain's heads) answers with the mean of
its heads' calibrated probabilities. Each head's temperature was fitted alone; the mean of
several calibrated heads is less confident than each of them (their errors differ, so
their answers disagree more often than each is wrong). This fits one temperature on the
combination's probabilities, on the faces each head's own temperature was fitted on
(FER-2013's test split: held out by every member), by the study's rule
(``experiments.calibration.fit_temperature``), and prints per dataset, on faces the model
never trained on (FER-2013 test; every face of CK+48 and JAFFE; the CREMA-D sample's
frames): accuracy, and mean confidence minus accuracy as the file ships and with that
temperature. A temperature never changes an answer (the arg-max), only its confidence.

    .venv/bin/python benchmarks/combination_temperature.py --model runs/three.pt

The model answers as it ships (its default prior; each head divides out its own training
prior under ``uniform`` before the mean). No heads model file carries such a temperature
today (``save_path_model`` refuses a file-wide calibration on a heads model): this only
measures what one would give.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from calibration_shift import faces
from pathnet_fer.experiments.calibration import apply_temperature, fit_temperature
from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pathnet.heads_model import HeadsModel
from pathnet_fer.pretrained import pretrained_path

FIT_ON = "fer2013"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a heads model file (default: the shipped one)")
    args = parser.parse_args()
    model = load_model(args.model or pretrained_path())
    if not isinstance(model.model, HeadsModel):
        parser.error(f"{model.path} is not a heads model: its own temperature is its combination's")
    sets = faces(model, load_config(CONFIG_DIR / "pretrained.yaml"))
    p_fit, y_fit = sets[FIT_ON]
    t = fit_temperature(p_fit, y_fit)
    print(f"{model.path}: heads {', '.join(model.head_names)}, prior {model.prior}")
    print(f"temperature on the combination, fitted on {FIT_ON} test ({len(y_fit)} faces): {t:.3f}")
    print("dataset | faces | accuracy | conf. - acc. as shipped | with the temperature")
    gaps = {"as shipped": [], "with T": []}
    for name, (p, y) in sets.items():
        acc = float((p.argmax(1) == y).mean())
        shipped = float(p.max(1).mean()) - acc
        scaled = apply_temperature(p, t)
        assert np.array_equal(scaled.argmax(1), p.argmax(1))  # no answer changes
        with_t = float(scaled.max(1).mean()) - acc
        gaps["as shipped"].append(shipped)
        gaps["with T"].append(with_t)
        print(f"{name} | {len(y)} | {acc:.3f} | {shipped:+.3f} | {with_t:+.3f}")
    for what, values in gaps.items():
        a = np.abs(values)
        print(f"{what}: mean |conf. - acc.| {a.mean():.3f}, within 0.05 on {(a <= 0.05).sum()} "
              f"of {len(a)}")  # fmt: skip


if __name__ == "__main__":
    main()
