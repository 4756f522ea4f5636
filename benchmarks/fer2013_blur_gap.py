"""FER-2013's training split against its test split: the sharpness gap, and what a blur does.

History: until 2026-12-04 the shared FER-2013 copy's training images were a heavily blurred
copy (median sharpness 1.92 against 29.24 for the test split; a Gaussian of sigma 3.06 px
at 48x48 matched them) while the test images, CK+48, JAFFE and our video crops were sharp.
That copy has been replaced by the original sharp images (same 28,709 file names; the test
split unchanged). This script was written to measure that gap and is kept to check, on the
data at hand, whether there is one: on the current data it finds none (docs/faces.md,
"FER-2013's training split: sharp now"; the old figures are there as history).

It measures, on the project's own crops (``preprocess_dataset`` with default
``FaceSettings``, 6 classes, neutral excluded as in the experiments' default
``keep_neutral=False``):

(a) sharpness, the mean |Laplacian| of each 48x48 uint8 crop (``cv2.Laplacian``, 3x3):
    median and number of crops below 4 (a blurred 48x48 face measures about 2) per split
    and dataset, the median JPEG size, the ratio of train's median to test's, and the
    Gaussian sigma (pixels at 48x48) that brings the FER test images' median sharpness
    down to the training images' median (found by bisection; 0 when test is not sharper;
    the blur is the pipeline's own ``faces.crop.blur_crop``, i.e. ``FaceSettings.blur``,
    rounded to uint8 like every crop). A verdict line says whether train is blurrier
    than test (median ratio below 0.8) or not;

(b) fixed cheap classifiers trained on ``--n-train`` FER training images (a seeded
    subsample) and scored on ``--n-held`` other training images (the in-distribution
    figure), on FER test as-is and blurred by the matched sigma;

(c) the same classifiers scored zero-shot on all of CK+48 (927 crops; contempt is not
    one of the 6 classes), as-is and blurred by the matched sigma.

Classifiers (scikit-learn ``LogisticRegression``, lbfgs, ``--max-iter``): ``pixels`` on the
2304 pixels standardised per image (zero mean, unit variance), and ``hog`` on OpenCV HOG
features (48x48 window, 16 px blocks, 8 px stride and cells, 9 bins: 900 values). The
inverse regularisation ``C`` of each is chosen from a small grid (``--pixels-c``,
``--hog-c``) by the held-out *training* accuracy only, never by a test score; every grid
point is printed too.

Last, "blur on every dataset" is what ``FaceSettings.blur = sigma`` does in an experiment:
every crop of every dataset blurred, FER training images included, the classifier (chosen
C) refit on them and scored on blurred held-out training images, FER test and CK+48, at
the matched sigma and at ``--every-sigmas``: with no gap to close it shows what the
setting costs.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fer2013_blur_gap.py
    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/fer2013_blur_gap.py --sharpness-only

About 2 minutes of one core (crops read from the face cache; the first run builds it);
``--sharpness-only`` prints (a) alone in seconds.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pathnet_fer.faces.crop import blur_crop
from pathnet_fer.faces.preprocess import preprocess_dataset
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.paths import data_root

HOG = dict(win=(48, 48), block=(16, 16), stride=(8, 8), cell=(8, 8), bins=9)
# Below this mean |Laplacian| a 48x48 crop is blurred (the blurred copy of FER-2013 train
# measured about 2, every one of its images below 4; sharp faces measure 18-30).
BLURRED_BELOW = 4.0
# Train's median sharpness under this share of test's is reported as a gap.
GAP_RATIO = 0.8


def sharpness(images: np.ndarray) -> np.ndarray:
    """Mean |Laplacian| of each uint8 crop: about 2 for a blurred 48x48 face (the
    blurred copy of FER-2013's training split once shared), 20-30 for sharp ones."""
    return np.array(
        [np.abs(cv2.Laplacian(im.astype(np.float32), cv2.CV_32F)).mean() for im in images],
        dtype=float,
    )


def blurred(images: np.ndarray, sigma: float) -> np.ndarray:
    """Every crop through the pipeline's blur (``FaceSettings.blur``)."""
    if sigma <= 0:
        return images
    return np.stack([blur_crop(im, sigma) for im in images])


def match_sigma(images: np.ndarray, target: float, hi: float = 8.0, tol: float = 0.005) -> float:
    """Smallest sigma whose blurred ``images`` have median sharpness <= ``target``."""
    if np.median(sharpness(images)) <= target:
        return 0.0
    if np.median(sharpness(blurred(images, hi))) > target:
        raise SystemExit(f"even sigma {hi} leaves the images sharper than {target:.2f}")
    lo = 0.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if np.median(sharpness(blurred(images, mid))) > target:
            lo = mid
        else:
            hi = mid
    return hi


def pixel_features(images: np.ndarray) -> np.ndarray:
    x = images.reshape(len(images), -1).astype(np.float32) / 255.0
    x -= x.mean(axis=1, keepdims=True)
    x /= x.std(axis=1, keepdims=True) + 1e-3
    return x


_HOG = cv2.HOGDescriptor(HOG["win"], HOG["block"], HOG["stride"], HOG["cell"], HOG["bins"])


def hog_features(images: np.ndarray) -> np.ndarray:
    return np.stack([_HOG.compute(im).ravel() for im in images]).astype(np.float32)


FEATURES = {"pixels": pixel_features, "hog": hog_features}


@dataclass
class Split:
    """One evaluation set: crops and labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray


def fit(features, images: np.ndarray, labels: np.ndarray, c: float, max_iter: int, seed: int):
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
        model.fit(features(images), labels)
    return model


def score(model, features, split: Split) -> float:
    return float(model.score(features(split.images), split.labels))


def parse_grid(text: str, what: str = "C values") -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a comma-separated list of numbers: {text!r}"
        ) from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"{what} must be > 0: {text!r}")
    return values


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="See the module docstring (and docs/faces.md) for what is measured.",
    )
    p.add_argument("--data", type=Path, default=None, help="data root (default: shared data)")
    p.add_argument("--cache-dir", default=None, help="face-crop cache (default: the usual)")
    p.add_argument("--n-train", type=int, default=8000, help="FER training images fitted")
    p.add_argument("--n-held", type=int, default=5000, help="other training images scored")
    p.add_argument("--pixels-c", type=parse_grid, default="0.001,0.01,0.1", help="C grid")
    p.add_argument("--hog-c", type=parse_grid, default="0.1,1,10", help="C grid")
    p.add_argument("--classifiers", default="pixels,hog", help="comma-separated: pixels, hog")
    p.add_argument("--max-iter", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--sigma", type=float, default=None, help="use this blur instead of the matched one"
    )
    p.add_argument(
        "--every-sigmas",
        type=lambda text: parse_grid(text, "sigmas"),
        default="1,2",
        help="blurs tried on every dataset, besides the matched one (default %(default)s)",
    )
    p.add_argument(
        "--sharpness-only",
        action="store_true",
        help="print the sharpness table (a) only, without the classifiers (seconds)",
    )
    args = p.parse_args(argv)
    classifiers = [c.strip() for c in args.classifiers.split(",") if c.strip()]
    unknown = sorted(set(classifiers) - set(FEATURES))
    if unknown:
        p.error(f"unknown classifiers {unknown}; known: {sorted(FEATURES)}")
    cv2.setNumThreads(1)
    started = time.perf_counter()
    root = args.data or data_root()
    settings = FaceSettings()
    load = dict(settings=settings, cache_dir=args.cache_dir, workers=1, progress=False)
    fer = preprocess_dataset("fer2013", root / "fer2013", keep_neutral=False, **load)
    ck = preprocess_dataset("ckplus48", root / "ckplus48", keep_neutral=False, **load)
    if tuple(fer.class_names) != tuple(ck.class_names):
        raise SystemExit(f"class names differ: {fer.class_names} vs {ck.class_names}")
    split = fer.frames["clip"].astype(str).str.split("/").str[0].to_numpy()
    train_all = np.flatnonzero(split == "train")
    test = np.flatnonzero(split == "test")
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(train_all)
    if args.n_train + args.n_held > len(order):
        p.error(f"--n-train + --n-held exceeds the {len(order)} training images")
    fit_idx, held_idx = order[: args.n_train], order[args.n_train : args.n_train + args.n_held]
    y = fer.labels

    # (a) sharpness and the matched blur
    crops = {  # name: (images, blurred by the matched sigma in the table, JPEG files)
        "FER-2013 train": (fer.images[train_all], False, _paths(fer, split, "train")),
        "FER-2013 test": (fer.images[test], True, _paths(fer, split, "test")),
        "CK+48": (ck.images, True, []),
    }
    target = float(np.median(sharpness(fer.images[train_all])))
    matched = match_sigma(fer.images[test], target)
    matched_ck = match_sigma(ck.images, target)
    sigma = matched if args.sigma is None else float(args.sigma)
    print(
        f"# FER-2013 train/test sharpness gap ({len(train_all)} train, {len(test)} test, "
        f"{len(ck)} CK+48 crops)"
    )
    print()
    print(
        f"| crops | n | median sharpness | below {BLURRED_BELOW:g} | blurred by sigma "
        f"{sigma:.2f} | median file bytes |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    for name, (images, blur_it, files) in crops.items():
        sharp = sharpness(images)
        after = f"{np.median(sharpness(blurred(images, sigma))):.2f}" if blur_it else ""
        size = f"{np.median([os.path.getsize(f) for f in files]):.0f}" if files else ""
        print(
            f"| {name} | {len(images)} | {np.median(sharp):.2f} | "
            f"{int(np.sum(sharp < BLURRED_BELOW))} | {after} | {size} |"
        )
    print()
    ratio = target / float(np.median(sharpness(fer.images[test])))
    print(
        f"train/test median sharpness ratio {ratio:.3f}: "
        + (
            f"NO GAP, FER-2013 train is about as sharp as its test split (ratio >= {GAP_RATIO})"
            if ratio >= GAP_RATIO
            else f"GAP, FER-2013 train is blurrier than its test split (ratio < {GAP_RATIO})"
        )
    )
    print(
        f"matched blur: sigma {matched:.2f} px (at 48x48) brings FER test's median sharpness "
        f"to train's {target:.2f}; CK+48 would need {matched_ck:.2f}"
        + ("" if args.sigma is None else f"; --sigma {sigma:.2f} used below")
    )
    if args.sharpness_only:
        print()
        print(f"{time.perf_counter() - started:.0f} s")
        print()
        print("command: " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
        return 0

    # (b), (c) classifiers
    held = Split("held", fer.images[held_idx], y[held_idx])
    tests = {
        "FER test": Split("test", fer.images[test], y[test]),
        "CK+48": Split("ck", ck.images, ck.labels),
    }
    grids = {"pixels": args.pixels_c, "hog": args.hog_c}
    print()
    print(
        f"classifiers: LogisticRegression(lbfgs, max_iter={args.max_iter}) fitted on "
        f"{args.n_train} FER training images (seed {args.seed}), held-out = {args.n_held} "
        f"other training images; pixels = 2304 pixels standardised per image; hog = "
        f"OpenCV HOG {HOG} ({_HOG.getDescriptorSize()} values); blur sigma {sigma:.2f}; "
        "C chosen by held-out training accuracy (*)"
    )
    print()
    print(
        "| classifier | C | train held-out | FER test | FER test blurred | gain "
        "| CK+48 | CK+48 blurred | gain |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    chosen: dict[str, float] = {}
    summary = []
    for name in classifiers:
        features = FEATURES[name]
        rows = []
        for c in grids[name]:
            model = fit(features, fer.images[fit_idx], y[fit_idx], c, args.max_iter, args.seed)
            row = {"C": c, "held": score(model, features, held)}
            for label, data in tests.items():
                row[label] = score(model, features, data)
                row[label + " blurred"] = score(
                    model, features, Split(data.name, blurred(data.images, sigma), data.labels)
                )
            rows.append(row)
        best = max(rows, key=lambda r: r["held"])
        chosen[name] = best["C"]
        summary.append((name, best))
        for row in rows:
            mark = "*" if row is best else ""
            print(
                f"| {name} | {row['C']:g}{mark} | {row['held']:.3f} | {row['FER test']:.3f} | "
                f"{row['FER test blurred']:.3f} | {row['FER test blurred'] - row['FER test']:+.3f}"
                f" | {row['CK+48']:.3f} | {row['CK+48 blurred']:.3f} | "
                f"{row['CK+48 blurred'] - row['CK+48']:+.3f} |"
            )

    # blur on every dataset (FaceSettings.blur), training images included
    sigmas = sorted({*args.every_sigmas, round(sigma, 2)})
    print()
    print(
        "blur on every dataset (FaceSettings.blur = sigma: FER training images blurred "
        "too), chosen C, refitted; gain vs the same classifier without blur:"
    )
    print()
    print("| classifier | C | sigma | train held-out | FER test | gain | CK+48 | gain |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, best in summary:
        features = FEATURES[name]
        for s in sigmas:
            model = fit(
                features, blurred(fer.images[fit_idx], s), y[fit_idx], best["C"], args.max_iter,
                args.seed,
            )  # fmt: skip
            every = [
                score(model, features, Split(d.name, blurred(d.images, s), d.labels))
                for d in (held, *tests.values())
            ]
            print(
                f"| {name} | {best['C']:g} | {s:.2f} | {every[0]:.3f} | {every[1]:.3f} | "
                f"{every[1] - best['FER test']:+.3f} | {every[2]:.3f} | "
                f"{every[2] - best['CK+48']:+.3f} |"
            )
    chance = np.bincount(tests["FER test"].labels).max() / len(test)
    print()
    print(
        f"majority class: FER test {chance:.3f}, CK+48 "
        f"{np.bincount(ck.labels).max() / len(ck):.3f}; {time.perf_counter() - started:.0f} s"
    )
    print()
    print("command: " + " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv]))
    return 0


def _paths(fer, split: np.ndarray, which: str) -> list[str]:
    manifest = fer.manifest[fer.manifest["status"] == "ok"]
    clips = set(fer.frames["clip"].to_numpy()[split == which])
    return manifest.loc[manifest["clip"].isin(clips), "path"].astype(str).tolist()


if __name__ == "__main__":
    sys.exit(main())
