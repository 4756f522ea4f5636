"""The manual batched SGD step: equals autograd SGD, touches only active modules."""

from __future__ import annotations

import pytest
import torch

from pathnet_fer.pathnet import PathNet, PathNetConfig, slot_weights
from pathnet_fer.pathnet.linear_sgd import train_paths

CFG = PathNetConfig(input_dim=30, layers=3, modules=8, units=6, max_active=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _setup(runs: int = 2, seed: int = 0, cfg: PathNetConfig = CFG):
    net = PathNet(cfg, runs=runs, seed=seed, device="cpu")
    gen = torch.Generator().manual_seed(seed)
    x = torch.rand(60, cfg.input_dim, generator=gen)
    y = torch.randint(0, 4, (60,), generator=gen)
    rw, rb = net.new_readout(4)
    return net, x, y, rw, rb, gen


def _autograd_sgd(net, run, paths, rw, rb, x, y, batches, lr, shared="sum"):
    """Reference for the documented semantics, written with autograd: P paths of one run,
    each with its OWN copy of its modules; the readout is shared and takes the sum (mean)
    of the paths' gradients at every step; at the end each module gets the sum (mean over
    the paths that use it) of the changes of its copies. ``batches (S, P, B)``."""
    cfg = net.config
    n_paths = len(paths)
    ws = [
        [net.weights[layer][run].clone().requires_grad_() for layer in range(cfg.layers)]
        for _ in range(n_paths)
    ]
    bs = [
        [net.biases[layer][run].clone().requires_grad_() for layer in range(cfg.layers)]
        for _ in range(n_paths)
    ]
    v, c = rw[run].clone().requires_grad_(), rb[run].clone().requires_grad_()
    scale = 1.0 if shared == "sum" else 1.0 / n_paths
    for step in batches:
        gv, gc = torch.zeros_like(v), torch.zeros_like(c)
        for p, path in enumerate(paths):
            cw = slot_weights(path, cfg.combine)
            a = x[step[p]]
            for layer in range(cfg.layers):
                idx = path[layer]
                h = torch.relu(
                    torch.einsum("bi,kui->bku", a, ws[p][layer][idx]) + bs[p][layer][idx]
                )
                a = (h * cw[layer].view(1, -1, 1)).sum(1)
            loss = torch.nn.functional.cross_entropy(a @ v.t() + c, y[step[p]])
            params = [*ws[p], *bs[p], v, c]
            grads = torch.autograd.grad(loss, params)
            with torch.no_grad():
                for q, g in zip(params[:-2], grads[:-2], strict=True):
                    q -= lr * g
            gv += grads[-2]
            gc += grads[-1]
        with torch.no_grad():
            v -= lr * scale * gv
            c -= lr * scale * gc
    out_w, out_b = [], []
    for layer in range(cfg.layers):
        w0, b0 = net.weights[layer][run], net.biases[layer][run]
        users = torch.zeros(cfg.modules)
        for path in paths:
            users[path[layer].unique()] += 1
        div = users.clamp(min=1) if shared == "mean" else torch.ones(cfg.modules)
        out_w.append(
            w0 + sum(ws[p][layer].detach() - w0 for p in range(n_paths)) / div.view(-1, 1, 1)
        )
        out_b.append(b0 + sum(bs[p][layer].detach() - b0 for p in range(n_paths)) / div.view(-1, 1))
    return out_w, out_b, v.detach(), c.detach()


def test_manual_sgd_equals_autograd_sgd_per_path() -> None:
    net, x, y, rw, rb, gen = _setup()
    paths = torch.tensor([[[0, 3, 3], [1, 2, 7], [5, 6, 0]], [[2, 4, 6], [0, 0, 0], [1, 3, 5]]])
    batches = torch.randint(0, 60, (9, 2, 8), generator=gen)
    refs = [
        _autograd_sgd(net, r, paths[r : r + 1], rw, rb, x, y, batches[:, r : r + 1], 0.05)
        for r in range(2)
    ]
    correct, loss = train_paths(net, torch.tensor([0, 1]), paths, rw, rb, x, y, batches, lr=0.05)
    for r, (ws, bs, v, c) in enumerate(refs):
        for layer in range(CFG.layers):
            torch.testing.assert_close(net.weights[layer][r], ws[layer], rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(net.biases[layer][r], bs[layer], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rw[r], v, rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(rb[r], c, rtol=1e-5, atol=1e-6)
    assert correct.shape == (2,) and 0 <= int(correct.min()) and int(correct.max()) <= 9 * 8
    assert bool((loss > 0).all())


def test_only_active_modules_and_readout_change_fixed_stay_bit_identical() -> None:
    net, x, y, rw, rb, gen = _setup(runs=2)
    paths = torch.tensor([[[0, 1, 2], [3, 4, 4], [5, 6, 7]], [[7, 6, 5], [4, 3, 2], [1, 0, 0]]])
    net.fixed[0, 0, 1] = True  # a fixed module on run 0's path
    net.fixed[1, 2, 3] = True  # a fixed module off the path
    before = [w.clone() for w in net.weights], [b.clone() for b in net.biases]
    rw0, rb0 = rw.clone(), rb.clone()
    batches = torch.randint(0, 60, (5, 2, 8), generator=gen)
    train_paths(net, torch.tensor([0, 1]), paths, rw, rb, x, y, batches, lr=0.1)
    for layer in range(CFG.layers):
        for r in range(2):
            for m in range(CFG.modules):
                same_w = torch.equal(net.weights[layer][r, m], before[0][layer][r, m])
                same_b = torch.equal(net.biases[layer][r, m], before[1][layer][r, m])
                active = m in paths[r, layer].tolist() and not bool(net.fixed[r, layer, m])
                assert (same_w and same_b) != active, f"run {r} layer {layer} module {m}"
    assert not torch.equal(rw, rw0) and not torch.equal(rb, rb0)


@pytest.mark.parametrize("mode", ["sum", "mean"])
def test_two_paths_of_a_run_combine_as_documented(mode: str) -> None:
    """Two paths of one run sharing modules (and the readout), trained in one batched call,
    equal the autograd reference of the documented combination rule."""
    paths = torch.tensor([[[0, 1, 2], [0, 1, 2], [0, 1, 1]], [[0, 3, 4], [3, 4, 5], [1, 4, 5]]])
    net, x, y, rw, rb, gen = _setup(runs=1)
    batches = torch.randint(0, 60, (6, 2, 8), generator=gen)
    ws, bs, v, c = _autograd_sgd(net, 0, paths, rw, rb, x, y, batches, 0.1, shared=mode)
    train_paths(net, torch.tensor([0, 0]), paths, rw, rb, x, y, batches, 0.1, shared_update=mode)
    for layer in range(CFG.layers):
        torch.testing.assert_close(net.weights[layer][0], ws[layer], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net.biases[layer][0], bs[layer], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rw[0], v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rb[0], c, rtol=1e-5, atol=1e-6)


def test_bad_shared_update_is_refused() -> None:
    net, x, y, rw, rb, _ = _setup(runs=1)
    with pytest.raises(ValueError, match="shared_update"):
        train_paths(
            net,
            torch.tensor([0]),
            torch.zeros(1, 3, 3, dtype=torch.int64),
            rw,
            rb,
            x,
            y,
            torch.zeros(1, 1, 4, dtype=torch.int64),
            0.1,
            shared_update="max",
        )


def test_training_runs_in_cache_sized_groups_gives_the_same_result(monkeypatch) -> None:
    from pathnet_fer.pathnet import linear_sgd as path_sgd

    results = []
    for group_bytes in (1 << 40, 1):  # all runs together, then one run per group
        monkeypatch.setattr(path_sgd, "CPU_GROUP_BYTES", group_bytes)
        net, x, y, rw, rb, gen = _setup(runs=3, seed=2)
        runs = torch.tensor([0, 0, 1, 1, 2, 2])
        paths = torch.randint(0, CFG.modules, (6, CFG.layers, CFG.max_active), generator=gen)
        batches = torch.randint(0, 60, (5, 6, 8), generator=gen)
        assert len(path_sgd.run_groups(net, runs)) == (1 if group_bytes > 1 else 3)
        correct, loss = train_paths(net, runs, paths, rw, rb, x, y, batches, 0.1)
        results.append((correct, loss, [w.clone() for w in net.weights], rw.clone()))
    (c1, l1, w1, r1), (c2, l2, w2, r2) = results
    assert torch.equal(c1, c2)
    torch.testing.assert_close(l1, l2)
    for a, b in zip(w1, w2, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(r1, r2, rtol=1e-6, atol=1e-7)


def test_path_order_does_not_matter() -> None:
    """Paths given run by run (fast readout form) or interleaved (general form): same result."""
    outs = []
    for order in ([0, 1, 2, 3], [2, 0, 3, 1]):
        net, x, y, rw, rb, gen = _setup(runs=2, seed=4)
        runs = torch.tensor([0, 0, 1, 1])
        paths = torch.randint(0, CFG.modules, (4, CFG.layers, CFG.max_active), generator=gen)
        batches = torch.randint(0, 60, (5, 4, 8), generator=gen)
        idx = torch.tensor(order)
        correct, _ = train_paths(
            net, runs[idx], paths[idx], rw, rb, x, y, batches[:, idx], 0.1, "mean"
        )
        outs.append((correct[idx.argsort()], [w.clone() for w in net.weights], rw.clone()))
    assert torch.equal(outs[0][0], outs[1][0])
    for a, b in zip(outs[0][1], outs[1][1], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(outs[0][2], outs[1][2], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "cfg",
    [
        PathNetConfig(input_dim=12, layers=1, modules=4, units=5, max_active=2),
        PathNetConfig(input_dim=12, layers=4, modules=6, units=3, max_active=4, combine="sum"),
        PathNetConfig(
            input_dim=12, layers=2, modules=1, units=4, max_active=1, init="torch-linear"
        ),
    ],
    ids=["1-layer", "4-layer-sum", "single-module"],
)
def test_other_shapes_match_autograd(cfg: PathNetConfig) -> None:
    net, x, y, rw, rb, gen = _setup(runs=1, seed=3, cfg=cfg)
    paths = torch.randint(0, cfg.modules, (2, cfg.layers, cfg.max_active), generator=gen)
    batches = torch.randint(0, 60, (4, 2, 8), generator=gen)
    ws, bs, v, c = _autograd_sgd(net, 0, paths, rw, rb, x, y, batches, 0.1)
    train_paths(net, torch.tensor([0, 0]), paths, rw, rb, x, y, batches, 0.1)
    for layer in range(cfg.layers):
        torch.testing.assert_close(net.weights[layer][0], ws[layer], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(net.biases[layer][0], bs[layer], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rw[0], v, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rb[0], c, rtol=1e-5, atol=1e-6)
