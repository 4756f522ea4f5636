"""Can one temperature calibrate a model on faces of every dataset? (issue 22)

A model file carries one soft-max temperature, fitted on its own held-out faces (the
shipped model: FER-2013's test split). On other people, in other conditions, a network
is usually over-confident. This scores a model on faces it never trained on, per dataset
(FER-2013 test; every face of CK+48 and JAFFE; the CREMA-D sample's frames), and prints,
per dataset, accuracy beside the mean confidence under:

- ``file``: the file's own temperature;
- ``own``: the temperature fitted on that dataset itself (an oracle: it looks at the
  faces it is scored on; the best one temperature can do there);
- ``others``: one temperature fitted on the OTHER datasets (each weighted equally), the
  honest estimate of a temperature chosen before meeting a new dataset.

Only for a model that learnt none of these datasets' people (the shipped model learnt
FER-2013's training split only). Run: ``.venv/bin/python benchmarks/calibration_shift.py``
(``--model FILE`` for another), always under the network's own (training) prior.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import minimize_scalar

from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.datasets.one_dataset import dataset_catalog
from pathnet_fer.experiments.calibration import LOG_T_BOUNDS, apply_temperature
from pathnet_fer.experiments.config import CONFIG_DIR
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path


def nll(proba: np.ndarray, labels: np.ndarray, t: float) -> float:
    p = apply_temperature(proba, t)
    return float(-np.mean(np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1.0))))


def fit_equal_weight(sets: list[tuple[np.ndarray, np.ndarray]]) -> float:
    """The temperature minimising the mean over datasets of each one's mean NLL."""
    best = minimize_scalar(
        lambda log_t: np.mean([nll(p, y, math.exp(log_t)) for p, y in sets]),
        bounds=LOG_T_BOUNDS,
        method="bounded",
    )
    return float(math.exp(best.x))


def faces(model, config) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Uncalibrated probabilities and labels per dataset, on faces the model never saw."""
    out = {}
    t_file = model.temperature
    for name in ("fer2013", "ckplus48", "jaffe"):
        d = load_dataset(config, name)
        index = np.arange(len(d.y))
        if config.datasets[name].folds == "fixed":
            index = dataset_folds(config, name, d)[0].test_index
        p = model.predict_proba(d.faces.images[index])
        out[name] = (apply_temperature(p, 1.0 / t_file), np.asarray(d.y)[index])
    root = config.resolved_data_root() / "crema-d-sample"
    if root.is_dir():
        catalog = dataset_catalog("crema-d-sample", model.face_settings, root=root)
        d = load_dataset(catalog, "crema-d-sample")
        p = model.predict_proba(d.faces.images)
        out["crema-d-sample"] = (apply_temperature(p, 1.0 / t_file), np.asarray(d.y))
    return out


def model_and_config(
    description: str, prior_option: bool = True, parser: argparse.ArgumentParser | None = None
) -> tuple[Any, Any]:
    """``--model FILE`` (default: the shipped one) loaded under ``--prior`` (default
    ``train``: the network's own scores, whatever prior the file assumes by default; a
    file without a recorded prior is taken as it is), and the pretrained recipe's config
    (which defines the datasets ``faces`` scores). ``prior_option=False``: always ``train``
    (for a benchmark that divides the prior out itself). ``parser``: one holding a
    benchmark's own options (read back with ``parser.parse_args()``)."""
    parser = parser or argparse.ArgumentParser(description=description)
    parser.add_argument("--model", type=Path, help="model file (default: the shipped one)")
    if prior_option:
        parser.add_argument(
            "--prior", choices=("train", "uniform"), default="train",
            help="the class prior the model assumes (default train: the network's own)",
        )  # fmt: skip
    args = parser.parse_args()
    model = load_model(args.model or pretrained_path())
    prior = getattr(args, "prior", "train")
    if model.has_prior:
        model = model.with_prior(prior)
    elif prior != "train":
        parser.error(f"{model.path} records no class prior: only --prior train")
    return model, load_config(CONFIG_DIR / "pretrained.yaml")


def main() -> None:
    # the network's own prior: refitting T under ``uniform`` would scale the prior too
    model, config = model_and_config(__doc__.splitlines()[0], prior_option=False)
    sets = faces(model, config)
    t_file = model.temperature
    print(f"{model.path}: file temperature {t_file:.3f}, prior {model.prior}")
    print("dataset | faces | accuracy | conf. (file T) | own T: conf. | others' T: conf.")
    for name, (p, y) in sets.items():
        acc = float((p.argmax(1) == y).mean())
        t_own = fit_equal_weight([(p, y)])
        t_others = fit_equal_weight([v for k, v in sets.items() if k != name])

        def conf(t: float, p: np.ndarray = p) -> float:
            return float(apply_temperature(p, t).max(1).mean())

        print(
            f"{name} | {len(y)} | {acc:.3f} | {conf(t_file):.3f} ({conf(t_file) - acc:+.3f}) | "
            f"T={t_own:.2f}: {conf(t_own):.3f} ({conf(t_own) - acc:+.3f}) | "
            f"T={t_others:.2f}: {conf(t_others):.3f} ({conf(t_others) - acc:+.3f})"
        )


if __name__ == "__main__":
    main()
