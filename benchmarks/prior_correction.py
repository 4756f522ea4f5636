"""Does removing FER-2013's class prior help on balanced faces of new people? (issue 22)

The shipped model learnt FER-2013's training split, where 30 % of the six-class faces are
happy and 1.8 % disgusted. A network trained on such labels carries that prior in its
scores; on a set whose emotions are about equally frequent (CK+48, JAFFE, CREMA-D) the
prior is wrong. *Logit adjustment* (Menon et al., ICLR 2021) subtracts ``tau * log(prior)``
from each face's log-probabilities before the argmax: with ``tau = 1`` it is the
Bayes-optimal rule for a balanced error when the network's probabilities are right for the
training distribution. The prior comes from the training labels alone: nothing is fitted on
the faces scored here. ``tau = 1`` is the rule; 0.5 is printed only as a sensitivity,
never to choose by (``--taus`` prints any others, e.g. a grid from 0 to 1, the same way:
a trade-off curve, not a choice).

Scores one model (default: the shipped one) on the faces of ``calibration_shift.py``
(FER-2013 test; every face of CK+48 and JAFFE; the CREMA-D sample's frames), with its own
mirror setting and temperature (tau = 0: its training prior, whatever prior the file
assumes by default; the prior divided out: the file's recorded class frequencies, else
FER-2013's training split's), and prints per dataset and tau: accuracy, unweighted recall
(UAR), the top class and its share, mean confidence (and its excess over accuracy),
and the paired difference against tau = 0 with an exact McNemar p; then one line per tau:
accuracy per dataset, the mean over FER-2013 test, CK+48 and JAFFE (the project's
cross-dataset rule) and the largest top-class share on the balanced sets.

Run: ``.venv/bin/python benchmarks/prior_correction.py`` (``--model FILE`` for another;
``--taus 0 0.1 0.2 ... 1`` for a curve).
"""

from __future__ import annotations

import argparse

import numpy as np

from calibration_shift import faces, model_and_config
from mirror_averaging import mcnemar_p
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.calibration import apply_temperature
from pathnet_fer.experiments.datasets import dataset_folds

TAUS = (0.0, 0.5, 1.0)
RULE_SETS = ("fer2013", "ckplus48", "jaffe")
"""The sets the project's cross-dataset rule averages (each once)."""
BALANCED = ("ckplus48", "jaffe", "crema-d-sample")
"""Sets whose emotions are about equally frequent: where a top share above 0.40 is collapse."""


def training_prior(config, n_classes: int) -> np.ndarray:
    """Class frequencies of FER-2013's training split (the shipped model's training faces)."""
    d = load_dataset(config, "fer2013")
    train = dataset_folds(config, "fer2013", d)[0].train_index
    counts = np.bincount(np.asarray(d.y)[train], minlength=n_classes).astype(float)
    return counts / counts.sum()


def adjusted(proba: np.ndarray, prior: np.ndarray, tau: float) -> np.ndarray:
    """softmax(log p - tau * log prior): with calibrated ``p`` (the file's temperature) and
    tau = 1, the posterior under a uniform prior over the classes."""
    z = np.log(np.clip(proba, 1e-12, 1.0)) - tau * np.log(prior)
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def uar(pred: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """Mean recall over the classes present in ``y``."""
    return float(np.mean([(pred[y == c] == c).mean() for c in range(n_classes) if (y == c).any()]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--taus", type=float, nargs="+", default=list(TAUS),
        help="prior strengths to print (default: 0 0.5 1); each in [0, 1]",
    )  # fmt: skip
    model, config = model_and_config(parser.description, prior_option=False, parser=parser)
    taus = parser.parse_args().taus
    if any(not 0.0 <= t <= 1.0 for t in taus):
        parser.error(f"--taus must lie in [0, 1], got {taus}")
    names = list(model.class_names)
    sets = faces(model, config)
    prior = (np.asarray(model.class_prior) if model.class_prior is not None
             else training_prior(config, len(names)))  # fmt: skip
    print(f"{model.path}: mirror {model.mirror}")
    print("training prior: " + ", ".join(f"{n} {p:.3f}" for n, p in zip(names, prior, strict=True)))
    print(
        "dataset | faces | tau | accuracy | UAR | top class (share) | conf. (- acc.) | "
        "vs tau 0 | McNemar p"
    )
    curve: dict[float, dict[str, tuple[float, float]]] = {t: {} for t in taus}
    for name, (p, y) in sets.items():
        p = apply_temperature(p, model.temperature)
        base = p.argmax(1) == y
        for tau in taus:
            q = adjusted(p, prior, tau)
            pred = q.argmax(1)
            correct = pred == y
            conf = float(q.max(1).mean())
            counts = np.bincount(pred, minlength=len(names))
            top = int(counts.argmax())
            curve[tau][name] = (float(correct.mean()), counts[top] / len(y))
            diff = f"{correct.mean() - base.mean():+.3f}" if tau else "-"
            p_value = f"{mcnemar_p(correct, base):.3g}" if tau else "-"
            print(
                f"{name} | {len(y)} | {tau:g} | {correct.mean():.3f} | "
                f"{uar(pred, y, len(names)):.3f} | {names[top]} ({counts[top] / len(y):.2f}) | "
                f"{conf:.3f} ({conf - correct.mean():+.3f}) | {diff} | {p_value}"
            )
    print_curve(curve, list(sets))


def print_curve(curve: dict[float, dict[str, tuple[float, float]]], names: list[str]) -> None:
    """One line per tau: accuracy per dataset, the rule's mean, the largest balanced share."""
    print("\ntau | " + " | ".join(names) + " | mean of " + ", ".join(RULE_SETS) +
          " | largest top share (balanced sets)")  # fmt: skip
    for tau, row in curve.items():
        mean = np.mean([row[n][0] for n in RULE_SETS if n in row])
        share = max((row[n][1] for n in BALANCED if n in row), default=float("nan"))
        accs = " | ".join(f"{row[n][0]:.3f}" for n in names)
        print(f"{tau:g} | {accs} | {mean:.3f} | {share:.2f}")


if __name__ == "__main__":
    main()
