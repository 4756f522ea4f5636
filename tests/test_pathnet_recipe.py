"""The conv paths' training recipe (``SgdRecipe``, ``EvolutionConfig`` settings): momentum,
weight decay, label smoothing and augmentation warps against torch.optim.SGD on an autograd
reference; frozen modules untouched by decay and momentum; warps exact and seeded; the
learning-rate schedules; settings refused where they do not apply."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.evolution.augment import draw_warps
from pathnet_fer.pathnet import PathNet, PathNetConfig
from pathnet_fer.pathnet.conv_ops import as_images, warped_images
from pathnet_fer.pathnet.sgd_recipe import SgdRecipe

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(seed: int = 3, **kw) -> PathNet:
    settings = dict(
        input_dim=144,
        module="conv",
        image_shape=(12, 12, 1),
        channels=(3, 4, 5),
        modules=6,
        max_active=2,
    )
    settings.update(kw)
    return PathNet(PathNetConfig(**settings), runs=1, seed=seed)


def _reference_forward(net, leaves, genotype, rw, rb, img):
    c = net.config
    a = img
    for layer in range(c.layers):
        inner = layer < c.layers - 1
        outs = [
            F.conv2d(a, *leaves[(layer, m)], padding=c.kernel // 2).relu()
            for m in sorted(set(genotype[layer].tolist()))
        ]
        a = torch.stack(outs).mean(0)
        if inner:
            a = F.max_pool2d(a, 2)
    return a.flatten(1) @ rw.t() + rb


@pytest.mark.parametrize(
    "recipe",
    [
        {"momentum": 0.9},
        {"weight_decay": 0.05},
        {"label_smoothing": 0.2},
        {"momentum": 0.8, "weight_decay": 0.01, "label_smoothing": 0.1, "warps": True},
        {"targets": True, "label_smoothing": 0.1},
    ],
)
def test_recipe_steps_equal_torch_sgd_on_an_autograd_reference(recipe) -> None:
    """One path, four steps, one of its modules frozen: every free parameter follows
    torch.optim.SGD(momentum, weight_decay on weights only) on the mean cross-entropy with
    label smoothing, of the warped and normalised images; the frozen module never moves."""
    net = _net()
    net.fixed[0, 1, 2] = True
    genotype = torch.tensor([[0, 1], [2, 3], [4, 5]])
    rw, rb = net.new_readout(4)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(30, 144, generator=gen)
    y = torch.randint(0, 4, (30,), generator=gen)
    steps, batch = 4, 6
    rows = torch.randint(0, 30, (steps, 1, batch), generator=gen)
    warps = None
    if recipe.pop("warps", False):
        config = EvolutionConfig(augment_flip=True, augment_shift=0.1, augment_rotate=10)
        warps = draw_warps(config, (steps, 1, batch), gen)
    targets = None
    if recipe.pop("targets", False):  # soft targets (e.g. FER+ vote shares)
        targets = torch.rand(30, 4, generator=gen).softmax(1)
    sgd = SgdRecipe(warps=warps, targets=targets, **recipe)
    lr = 0.05

    leaves, frozen = {}, {}
    for layer in range(3):
        for m in genotype[layer].tolist():
            w = net.weights[layer][0, m].clone().requires_grad_()
            b = net.biases[layer][0, m].clone().requires_grad_()
            leaves[(layer, m)] = (w, b)
            if net.fixed[0, layer, m]:
                frozen[(layer, m)] = (w, b)
    lw, lb = rw[0].clone().requires_grad_(), rb[0].clone().requires_grad_()
    free = [pair for key, pair in leaves.items() if key not in frozen]
    decayed = [w for w, _ in free] + [lw]
    plain = [b for _, b in free] + [lb]
    opt = torch.optim.SGD(
        [{"params": decayed, "weight_decay": sgd.weight_decay}, {"params": plain}],
        lr=lr,
        momentum=sgd.momentum,
    )
    for s in range(steps):
        r = rows[s, 0]
        if warps is None:
            img = as_images(x[r], (12, 12, 1), "image")
        else:
            img = warped_images(x[r], (12, 12, 1), "image", warps[s, 0])
        logits = _reference_forward(net, leaves, genotype, lw, lb, img)
        target = y[r] if targets is None else targets[r]
        loss = F.cross_entropy(logits, target, label_smoothing=sgd.label_smoothing)
        opt.zero_grad()
        loss.backward()
        opt.step()

    frozen_before = [t.detach().clone() for pair in frozen.values() for t in pair]
    net.train_paths(torch.tensor([0]), genotype[None], rw, rb, x, y, rows, lr, "sum", sgd)
    for (layer, m), (w, b) in leaves.items():
        torch.testing.assert_close(net.weights[layer][0, m], w.detach(), atol=3e-6, rtol=1e-4)
        torch.testing.assert_close(net.biases[layer][0, m], b.detach(), atol=3e-6, rtol=1e-4)
    torch.testing.assert_close(rw[0], lw.detach(), atol=3e-6, rtol=1e-4)
    torch.testing.assert_close(rb[0], lb.detach(), atol=3e-6, rtol=1e-4)
    after = [net.weights[1][0, 2], net.biases[1][0, 2]]
    for then, now in zip(frozen_before, after, strict=True):
        assert torch.equal(then, now)  # bit-identical, decay and momentum included


def test_frozen_modules_stay_bit_identical_through_a_whole_recipe_task() -> None:
    """A transfer task with every ingredient on: the source's fixed modules never move."""
    net = _net(seed=5)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.rand(60, 144, generator=gen), torch.randint(0, 3, (60,), generator=gen)
    recipe = dict(
        momentum=0.9,
        weight_decay=0.01,
        label_smoothing=0.1,
        lr_schedule="cosine",
        augment_flip=True,
        augment_shift=0.1,
        augment_rotate=10,
        augment_scale=0.1,
    )
    cfg = EvolutionConfig(generations=3, population=4, minibatches=3, batch_size=8, **recipe)
    source = evolve(net, TaskData(x, y), 3, cfg, seed=0, name="source")
    net.fix(source)
    snapshot = [
        (w[net.fixed[:, i]].clone(), b[net.fixed[:, i]].clone())
        for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True))
    ]
    evolve(net, TaskData(x, (y + 1) % 3), 3, cfg, seed=1, name="dest")
    for i, (w, b) in enumerate(zip(net.weights, net.biases, strict=True)):
        assert torch.equal(w[net.fixed[:, i]], snapshot[i][0])
        assert torch.equal(b[net.fixed[:, i]], snapshot[i][1])


def test_flip_warp_mirrors_exactly_and_the_identity_warp_changes_nothing() -> None:
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(5, 144, generator=gen)
    plain = as_images(x, (12, 12, 1), "image")
    identity = torch.tensor([[1.0, 0, 0], [0, 1, 0]]).expand(5, 2, 3)
    torch.testing.assert_close(warped_images(x, (12, 12, 1), "image", identity), plain)
    mirror = torch.tensor([[-1.0, 0, 0], [0, 1, 0]]).expand(5, 2, 3)
    torch.testing.assert_close(
        warped_images(x, (12, 12, 1), "image", mirror), plain.flip(-1), atol=1e-5, rtol=0
    )
    # a shift by 2 pixels (2/12 of the side = 4/12 in [-1, 1] units): pixel 2 lands at 0
    shift = torch.tensor([[1.0, 0, 4 / 12], [0, 1, 0]]).expand(5, 2, 3)
    moved = warped_images(x, (12, 12, 1), "none", shift)
    raw = as_images(x, (12, 12, 1), "none")
    torch.testing.assert_close(moved[..., :10], raw[..., 2:], atol=1e-5, rtol=0)


def test_warps_are_seeded_and_drawn_within_their_ranges() -> None:
    cfg = EvolutionConfig(
        augment_flip=True, augment_shift=0.1, augment_rotate=15, augment_scale=0.2
    )
    a = draw_warps(cfg, (50, 4, 16), torch.Generator().manual_seed(7))
    b = draw_warps(cfg, (50, 4, 16), torch.Generator().manual_seed(7))
    c = draw_warps(cfg, (50, 4, 16), torch.Generator().manual_seed(8))
    assert a.shape == (50, 4, 16, 2, 3)
    assert torch.equal(a, b) and not torch.equal(a, c)
    linear = a[..., :2].reshape(-1, 2, 2)
    det = torch.linalg.det(linear)
    mirrored = (det < 0).float().mean()
    assert 0.4 < float(mirrored) < 0.6  # about half the faces mirrored
    zoom = det.abs().rsqrt()  # |det| = 1 / zoom^2
    assert float(zoom.min()) >= 0.8 - 1e-5 and float(zoom.max()) <= 1.2 + 1e-5
    assert float(a[..., 2].abs().max()) <= 0.2 + 1e-6  # shift: 0.1 of the side
    off = EvolutionConfig()
    assert not off.augments
    assert torch.equal(
        draw_warps(EvolutionConfig(augment_shift=0.1), (2, 1, 3), torch.Generator().manual_seed(0))[
            ..., :2
        ],
        torch.eye(2, 3)[:, :2].expand(2, 1, 3, 2, 2),
    )


def test_augmented_evolution_is_deterministic_per_seed_and_differs_from_plain() -> None:
    gen = torch.Generator().manual_seed(4)
    x, y = torch.rand(40, 144, generator=gen), torch.randint(0, 3, (40,), generator=gen)

    def run(seed: int, **recipe) -> torch.Tensor:
        net = _net(seed=1)
        cfg = EvolutionConfig(generations=3, population=4, minibatches=2, batch_size=8, **recipe)
        task = evolve(net, TaskData(x, y), 3, cfg, seed=seed)
        return torch.cat([w.flatten() for w in net.weights] + [task.readout_weight.flatten()])

    aug = dict(augment_flip=True, augment_rotate=10.0)
    assert torch.equal(run(0, **aug), run(0, **aug))
    assert not torch.equal(run(0, **aug), run(1, **aug))
    assert not torch.equal(run(0, **aug), run(0))


def test_learning_rate_schedules() -> None:
    cosine = EvolutionConfig(generations=100, lr=0.1, lr_schedule="cosine", lr_end=0.001)
    assert cosine.lr_at(0) == pytest.approx(0.1)
    assert cosine.lr_at(50) == pytest.approx(0.0505)
    assert cosine.lr_at(100) == pytest.approx(0.001)
    assert all(cosine.lr_at(g) > cosine.lr_at(g + 1) for g in range(100))
    step = EvolutionConfig(generations=100, lr=0.1, lr_schedule="step")
    assert [step.lr_at(g) for g in (0, 49, 50, 74, 75, 99)] == pytest.approx(
        [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]
    )
    assert EvolutionConfig(lr=0.03).lr_at(500) == 0.03
    assert math.isclose(EvolutionConfig(generations=0, lr_schedule="cosine").lr_at(0), 0.02)


def test_recipe_settings_are_checked_and_refused_for_linear_modules() -> None:
    for bad in (
        {"momentum": 1.5},
        {"weight_decay": -1},
        {"label_smoothing": 1.0},
        {"augment_shift": 0.9},
        {"lr_schedule": "linear"},
        {"lr_end": 1.0},
        {"augment_flip": 1},
        {"momentum": float("nan")},
    ):
        with pytest.raises(ValueError, match="EvolutionConfig"):
            EvolutionConfig(**bad)
    net = PathNet(PathNetConfig(input_dim=16, modules=4, max_active=2, units=3), seed=0)
    rw, rb = net.new_readout(2)
    x, y = torch.rand(8, 16), torch.randint(0, 2, (8,))
    with pytest.raises(ValueError, match="settings of conv modules"):
        net.train_paths(
            torch.tensor([0]),
            torch.zeros(1, 3, 2, dtype=torch.long),
            rw,
            rb,
            x,
            y,
            torch.zeros(1, 1, 4, dtype=torch.long),
            0.1,
            "sum",
            SgdRecipe(momentum=0.9),
        )


def test_new_settings_at_their_defaults_keep_old_identities() -> None:
    """Checkpoints, run dirs and source-store keys written before the recipe existed hold
    no recipe keys: at their defaults the settings stay out of ``to_dict``."""
    plain = EvolutionConfig().to_dict()
    assert "momentum" not in plain and "augment_flip" not in plain
    assert EvolutionConfig.from_dict(plain) == EvolutionConfig()
    on = EvolutionConfig(momentum=0.9).to_dict()
    assert on["momentum"] == 0.9 and "weight_decay" not in on
    assert EvolutionConfig.from_dict(on).momentum == 0.9


def test_a_scheduled_task_cannot_be_extended() -> None:
    net = _net()
    x, y = torch.rand(20, 144), torch.randint(0, 2, (20,))
    cfg = EvolutionConfig(
        generations=2, population=2, minibatches=1, batch_size=4, lr_schedule="cosine"
    )
    task = evolve(net, TaskData(x, y), 2, cfg)
    longer = EvolutionConfig.from_dict({**cfg.to_dict(), "generations": 4})
    with pytest.raises(ValueError, match="schedule spans"):
        evolve(net, TaskData(x, y), config=longer, task=task)


def test_recipe_settings_flow_from_a_study_config_and_bad_ones_are_refused(tmp_path) -> None:
    from pathnet_fer.experiments.config import ConfigError
    from pathnet_fer.experiments.config_loading import load_config

    config = load_config(
        "demo",
        [f"cache_dir={tmp_path}", "evolution.momentum=0.9", "evolution.augment_flip=true",
         "evolution.lr_schedule=cosine"],
    )  # fmt: skip
    evo = EvolutionConfig.from_dict(config.evolution)
    assert (evo.momentum, evo.augment_flip, evo.lr_schedule) == (0.9, True, "cosine")
    with pytest.raises(ConfigError, match="momentum must be in"):
        load_config("demo", [f"cache_dir={tmp_path}", "evolution.momentum=2"])
    with pytest.raises(ConfigError, match="lr_schedule must be one of"):
        load_config("demo", [f"cache_dir={tmp_path}", "evolution.lr_schedule=warm"])


def test_a_diverging_task_stops_at_once_with_the_remedy() -> None:
    """Momentum 0.9 at the paper's rate 0.02 (an effective step of 0.2) blew FER-2013's conv
    source up to NaN; the GA must stop there, not carry NaN into figures and models."""
    from pathnet_fer.evolution.evolve import TrainingDivergedError

    net = _net(seed=2)
    gen = torch.Generator().manual_seed(0)
    x, y = torch.rand(40, 144, generator=gen), torch.randint(0, 3, (40,), generator=gen)
    cfg = EvolutionConfig(generations=20, population=2, minibatches=5, batch_size=8, lr=5.0,
                          momentum=0.9)  # fmt: skip
    with pytest.raises(
        TrainingDivergedError, match=r"diverged at generation \d+.*lower evolution.lr"
    ):
        evolve(net, TaskData(x, y), 3, cfg, seed=0)


def test_a_study_config_at_the_defaults_holds_no_recipe_keys(tmp_path) -> None:
    """Run directories written before the recipe (and block) settings existed hold no such
    keys; the resolved config of today must not add them at their defaults, or every
    such run would be refused on resume as 'a different configuration'."""
    from pathnet_fer.experiments.config_loading import load_config

    config = load_config("demo", [f"cache_dir={tmp_path}"])
    assert not {"momentum", "augment_flip", "lr_schedule"} & set(config.evolution)
    assert not {"block_depth", "bn_momentum"} & set(config.pathnet)
    assert "soft_labels" not in config.to_dict()["datasets"]["fer2013"]
    on = load_config("demo", [f"cache_dir={tmp_path}", "evolution.momentum=0.5"])
    assert on.evolution["momentum"] == 0.5
