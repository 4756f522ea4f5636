"""It learns: digits held-out accuracy, batched vs sequential pair training, real faces."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.pathnet import PathNet, PathNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data / 16.0).astype("float32")
    order = np.random.RandomState(0).permutation(len(d.target))
    x, y = x[order], d.target[order]
    return TaskData(x[:1000], y[:1000]), torch.tensor(x[1000:]), y[1000:]


def _heldout(net, task, x, y) -> np.ndarray:
    return np.array([(net.predict(x, task, run=r).numpy() == y).mean() for r in range(net.runs)])


def test_short_evolution_beats_chance_on_heldout_digits(digits) -> None:
    train, x_test, y_test = digits
    net = PathNet(PathNetConfig(input_dim=64), runs=3, seed=0, device="cpu")
    events = []
    task = evolve(
        net,
        train,
        n_classes=10,
        config=EvolutionConfig(generations=30),
        seed=0,
        callbacks=[events.append],
        name="digits",
    )
    acc = _heldout(net, task, x_test, y_test)
    assert acc.min() > 0.35, f"held-out accuracy {acc} should clearly beat chance (0.10)"
    # the GA recorded what the paper plots
    h = task.history_tensors()
    assert h["fitness"].shape == (30, 3, 2) and len(events) == 30
    assert events[-1].generation == 30 and events[0].fitness.shape == (3, 2)
    assert float(h["fitness"][-5:].mean()) > float(h["fitness"][:5].mean()) + 0.15
    assert float(h["loss"][-5:].mean()) < float(h["loss"][:5].mean())
    # winners are the fitter of each pair, best path comes from the final population
    ev = events[-1]
    rows = torch.arange(3)
    assert bool((ev.fitness[rows, ev.winner] >= ev.fitness[rows, 1 - ev.winner]).all())
    for r in range(3):
        assert any(torch.equal(task.best_paths[r], m) for m in task.population[r])


def test_batched_pair_training_learns_as_well_as_sequential(digits) -> None:
    """Same budget, 4 seeds each (runs), held-out accuracy: batched within 0.05 of sequential."""
    train, x_test, y_test = digits
    scores = {}
    for mode in ("batched", "sequential"):
        net = PathNet(PathNetConfig(input_dim=64), runs=4, seed=11, device="cpu")
        task = evolve(
            net,
            train,
            n_classes=10,
            seed=5,
            config=EvolutionConfig(generations=25, pair_training=mode),
        )
        scores[mode] = _heldout(net, task, x_test, y_test)
    print("held-out accuracy batched", scores["batched"], "sequential", scores["sequential"])
    assert scores["batched"].mean() >= scores["sequential"].mean() - 0.05, scores
    assert scores["sequential"].mean() > 0.3


def test_learns_on_real_face_crops_subject_independent(require_data) -> None:
    """CK+48 48x48 crops (2304 features), 6 emotions, held-out subjects: beats majority."""
    import cv2

    root = require_data("ckplus48")
    classes = ["anger", "disgust", "fear", "happy", "sadness", "surprise"]
    xs, ys, subjects = [], [], []
    for label, name in enumerate(classes):
        for png in sorted((root / name).glob("*.png")):
            img = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE)
            if img is None or img.shape != (48, 48):
                continue
            xs.append(img.reshape(-1) / 255.0)
            ys.append(label)
            subjects.append(png.name.split("_")[0])
    x = np.asarray(xs, dtype=np.float32)
    y = np.asarray(ys)
    subj = np.asarray(subjects)
    test_subjects = np.unique(subj)[::4]  # every 4th subject held out
    test = np.isin(subj, test_subjects)
    assert test.sum() > 50 and (~test).sum() > 400
    net = PathNet(PathNetConfig(input_dim=2304), runs=2, seed=0, device="cpu")
    task = evolve(
        net,
        TaskData(x[~test], y[~test]),
        n_classes=6,
        config=EvolutionConfig(generations=30),
        seed=0,
        name="ck+",
    )
    acc = _heldout(net, task, torch.tensor(x[test]), y[test])
    majority = np.bincount(y[test]).max() / test.sum()
    print(f"CK+48 held-out accuracy per run {acc}, majority class {majority:.3f}")
    assert acc.mean() > majority + 0.1, (acc, majority)


def test_tiny_data_and_other_settings_run_end_to_end() -> None:
    """Fewer rows than one minibatch, clamp boundary, sequential pairs, sum combine, 1 layer."""
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(5, 8, generator=gen)
    y = torch.tensor([0, 1, 2, 0, 1])
    net = PathNet(
        PathNetConfig(input_dim=8, layers=1, modules=3, units=4, max_active=2, combine="sum"),
        runs=2,
        seed=0,
        device="cpu",
    )
    cfg = EvolutionConfig(
        generations=4,
        population=3,
        minibatches=3,
        mutation_boundary="clamp",
        pair_training="sequential",
        mutation_rate=0.5,
    )
    task = evolve(net, TaskData(x, y), n_classes=3, config=cfg, seed=0)
    assert task.best_paths.shape == (2, 1, 2)
    assert int(task.population.min()) >= 0 and int(task.population.max()) < 3
    frame = task.history_frame()
    assert len(frame) == 4 * 2 * 2 and frame["won"].sum() == 4 * 2
    assert net.predict_proba(x, task, run=1).shape == (5, 3)
