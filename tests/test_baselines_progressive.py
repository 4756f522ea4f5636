"""MLP and Progressive Neural Network baselines on real CK+48 crops."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.baselines.mlp import MLP, MLPConfig
from pathnet_fer.baselines.progressive import ProgressiveNet
from pathnet_fer.baselines.sgd_training import predict_proba, torch_threads, train_sgd


@pytest.fixture(scope="module")
def ckplus(require_data, tmp_path_factory):
    from pathnet_fer.faces.preprocess import preprocess_dataset

    root = require_data("ckplus48")
    cache = tmp_path_factory.mktemp("ck_cache")
    return preprocess_dataset("ckplus48", root, cache_dir=cache, progress=False)


def test_mlp_is_the_size_of_one_path():
    cfg = MLPConfig.like_path(layers=3, units=20, max_active=5)
    assert (cfg.layers, cfg.width) == (3, 100)
    net = MLP(2304, 6, cfg.layers, cfg.width)
    n = sum(p.numel() for p in net.parameters())
    path = 5 * (2304 * 20 + 20) + 2 * 5 * (20 * 20 + 20) + 20 * 6 + 6  # one PathNet path
    assert n == 251_306 and path == 234_826 and 1.0 < n / path < 1.1


def test_mlp_learns_real_crops(ckplus):
    """Plain SGD (PathNet's lr 0.02) fits the training subjects well above chance."""
    x, y = ckplus.features(), ckplus.labels
    torch.manual_seed(0)
    net = MLP(x.shape[1], 6)
    with torch_threads(1):
        log = train_sgd(net, x, y, samples=16 * 1500, lr=0.02, seed=0)
    loss, acc = log.per_generation()
    assert len(loss) == 15 and loss[-1] < loss[0] - 0.4, loss
    train_acc = float((predict_proba(net, x).argmax(1) == y).mean())
    assert train_acc > 0.6, train_acc


def test_progressive_keeps_earlier_columns_bit_identical(ckplus):
    """Training column 2 on a second task changes nothing of column 1 (weights, outputs).

    What the code guarantees is that column 1's parameters are bit-identical. Its outputs
    are then bit-identical only where the CPU kernels run the same code path: the same
    thread count and batch shape, so both forward passes run inside ``torch_threads(1)``
    (outside it, 2 threads may differ at the last float32 ulp for the same weights).
    """
    x, y = ckplus.features(), ckplus.labels
    first = np.isin(y, [0, 1, 2])  # task 1: anger/disgust/fear; task 2: the other three
    torch.manual_seed(0)
    net = ProgressiveNet(x.shape[1], layers=3, width=100, adapter_width=20)
    with torch_threads(1):
        net.add_column(3)
        train_sgd(net.column_model(0), x[first], y[first], 16 * 200, lr=0.02, seed=0)
        snapshot = {k: v.clone() for k, v in net.state_dict().items()}
        out_before = predict_proba(net.column_model(0), x[:64])
        column = net.add_column(3)
        assert column == 1 and len(net.columns[1].adapters) == 3
        log = train_sgd(net.column_model(1), x[~first], y[~first] - 3, 16 * 200, lr=0.02, seed=1)
    assert np.isfinite(log.loss).all()
    for key, value in snapshot.items():
        assert torch.equal(net.state_dict()[key], value), f"{key} changed"
    with torch_threads(1):  # the same kernels as for out_before: bit-for-bit
        assert np.array_equal(predict_proba(net.column_model(0), x[:64]), out_before)
    # with any thread count, the same outputs within float32 rounding
    np.testing.assert_allclose(predict_proba(net.column_model(0), x[:64]), out_before, atol=1e-6)
    # The new column did learn, and its lateral adapters were trained.
    assert not torch.equal(net.columns[1].adapters[0].alpha, torch.tensor([0.1]))
    acc = float((predict_proba(net.column_model(1), x[~first]).argmax(1) == y[~first] - 3).mean())
    assert acc > 0.5, acc


def test_progressive_needs_a_column():
    with pytest.raises(RuntimeError, match="add_column"):
        ProgressiveNet(10)(torch.zeros(2, 10))


def test_same_seed_same_result(ckplus):
    """One seed gives the same minibatches, losses and weights."""
    x, y = ckplus.features()[:300], ckplus.labels[:300]

    def run() -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(3)
        net = MLP(x.shape[1], 6)
        with torch_threads(1):
            log = train_sgd(net, x, y, samples=16 * 40, lr=0.02, seed=3)
        return log.loss, net.readout.weight.detach().clone()

    (loss_a, w_a), (loss_b, w_b) = run(), run()
    assert loss_a == loss_b and torch.equal(w_a, w_b)
