"""Fine-tune a CNN baseline on face crops: the head only (cached features) or the whole net.

``head``: the backbone is frozen and run once, in eval mode and in large batches, over
all crops; the features are cached and only the new linear head trains on them (SGD
over cached features is thousands of times cheaper than re-running the backbone).
``full``: every layer trains, crops are resized per minibatch.
A model without pretrained weights (``--weights none``, the ``cifar`` CNN) always trains
fully: a frozen random backbone is not a baseline anyone would report.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from pathnet_fer.baselines.cnn_zoo import CNNClassifier, build_cnn, count_parameters
from pathnet_fer.baselines.sgd_training import TrainingLog, predict_proba, torch_threads, train_sgd
from pathnet_fer.baselines.weights import WeightsChoice

FINETUNE_MODES = ("head", "full")


@dataclass
class FinetuneConfig:
    """Optimiser settings of a CNN baseline (budget in samples comes from the experiment)."""

    finetune: str = "head"  # head | full
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 16
    input_size: int | None = None  # None: the backbone's native size (224, 299, 32)
    feature_batch: int = 64  # forward batch for cached features and prediction
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.finetune not in FINETUNE_MODES:
            raise ValueError(f"finetune must be one of {FINETUNE_MODES}, got {self.finetune!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@torch.inference_mode()
def extract_features(model: CNNClassifier, images: np.ndarray, batch: int = 64) -> torch.Tensor:
    """Backbone features of uint8 crops, in eval mode, batched: ``(n, num_features)``."""
    model.eval()
    device = model.mean.device
    chunks = [
        model.features(model.prepare(images[i : i + batch]).to(device)).float().cpu()
        for i in range(0, len(images), batch)
    ]
    return torch.cat(chunks) if chunks else torch.zeros(0, model.num_features)


@dataclass
class FittedCNN:
    """A trained CNN baseline: its arm name, weights origin, training log and model."""

    arm: str
    model: CNNClassifier
    mode: str  # "head" | "full"
    weights: WeightsChoice
    log: TrainingLog
    train_seconds: float
    config: FinetuneConfig

    @property
    def parameters(self) -> int:
        return count_parameters(self.model)

    @property
    def trainable_parameters(self) -> int:
        return count_parameters(self.model, trainable_only=True)

    def predict_proba(self, images: np.ndarray, features: torch.Tensor | None = None) -> np.ndarray:
        """Emotion probabilities ``(n, n_classes)`` for uint8 crops.

        ``features``: the frozen backbone's features of ``images`` if already cached
        (head mode only), so the backbone is not run again.
        """
        if self.mode == "head":
            feats = (
                features
                if features is not None
                else extract_features(self.model, images, self.config.feature_batch)
            )
            return predict_proba(self.model.head, feats, device=self.config.device)
        return predict_proba(
            self.model,
            images,
            batch_size=self.config.feature_batch,
            transform=self.model.prepare,
            device=self.config.device,
        )


def arm_name(model: str, mode: str, pretrained: bool) -> str:
    """The metrics ``arm`` of a CNN baseline, e.g. ``mobilenet_v2-head``, ``cifar-scratch``."""
    return f"{model}-{mode}" if pretrained else f"{model}-scratch"


def finetune_cnn(
    name: str,
    images: np.ndarray,
    labels: np.ndarray,
    samples: int,
    n_classes: int = 6,
    weights: str = "auto",
    config: FinetuneConfig | None = None,
    seed: int = 0,
    features: torch.Tensor | None = None,
) -> FittedCNN:
    """Build ``name`` with a new ``n_classes`` head and train it for ``samples`` samples.

    ``features``: the frozen backbone's features of ``images`` when the caller cached
    them (they do not depend on the fold); used in head mode only.
    """
    config = config or FinetuneConfig()
    torch.manual_seed(seed)
    model, choice = build_cnn(name, n_classes, weights, config.input_size)
    model.to(config.device)
    mode = config.finetune if choice.pretrained else "full"
    sgd = dict(
        lr=config.lr,
        momentum=config.momentum,
        weight_decay=config.weight_decay,
        batch_size=config.batch_size,
        seed=seed,
        device=config.device,
    )
    start = time.perf_counter()
    if mode == "head":
        for p in model.backbone.parameters():
            p.requires_grad_(False)
        feats = (
            features
            if features is not None
            else extract_features(model, images, config.feature_batch)
        )
        with torch_threads(1):  # a linear head: thread hand-offs cost more than the maths
            log = train_sgd(model.head, feats, labels, samples, **sgd)
    else:
        model.train()
        log = train_sgd(model, images, labels, samples, transform=model.prepare, **sgd)
    model.eval()
    seconds = time.perf_counter() - start
    return FittedCNN(
        arm_name(name, mode, choice.pretrained), model, mode, choice, log, seconds, config
    )
