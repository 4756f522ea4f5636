"""Does averaging each face with its mirror image pay, on faces the model never saw?

Scores one model twice on the same faces, per dataset (FER-2013 test; every face of
CK+48 and JAFFE; the CREMA-D sample's frames), as ``calibration_shift.py`` loads them:
with ``mirror`` off and on (``LoadedModel.mirrored``; twice the network time per face).
Prints accuracy, top-class share and mean confidence (the file's temperature) for both,
the paired difference and an exact McNemar p (binomial test on the faces only one of the
two gets right). Only for a model that learnt none of these datasets' people (the
shipped model learnt FER-2013's training split only).

Run: ``.venv/bin/python benchmarks/mirror_averaging.py`` (``--model FILE`` for another;
``--prior uniform`` for the shipped default, else the network's own prior).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import binomtest

from calibration_shift import faces, model_and_config
from pathnet_fer.experiments.calibration import apply_temperature


def mcnemar_p(a: np.ndarray, b: np.ndarray) -> float:
    """Exact two-sided McNemar p of two classifiers' correctness on the same faces."""
    only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
    return 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b).pvalue


def main() -> None:
    model, config = model_and_config(__doc__.splitlines()[0])
    t = model.temperature
    views = {on: faces(model.mirrored(on), config) for on in (False, True)}
    print(
        f"{model.path}: file temperature {t:.3f}, file setting mirror {model.mirror}, "
        f"prior {model.prior}"
    )
    print("dataset | faces | off: acc. (top share, conf.) | on: acc. (top share, conf.) | "
          "on - off | McNemar p")  # fmt: skip
    for name, (p_off, y) in views[False].items():
        p_on = views[True][name][0]
        row = []
        correct = {}
        for on, p in ((False, p_off), (True, p_on)):
            pred = p.argmax(1)
            correct[on] = pred == y
            top = np.bincount(pred, minlength=p.shape[1]).max() / len(y)
            conf = float(apply_temperature(p, t).max(1).mean())
            row.append(f"{correct[on].mean():.3f} ({top:.2f}, {conf:.3f})")
        gain = correct[True].mean() - correct[False].mean()
        p_value = mcnemar_p(correct[True], correct[False])
        print(f"{name} | {len(y)} | {row[0]} | {row[1]} | {gain:+.3f} | {p_value:.3g}")


if __name__ == "__main__":
    main()
