"""Super-network inference and the standalone PathModel export."""

from __future__ import annotations

import pytest
import torch

from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
from pathnet_fer.pathnet import PathModel, PathNet, PathNetConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def trained():
    from sklearn.datasets import load_digits

    torch.set_num_threads(1)
    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    y = torch.tensor(d.target)
    net = PathNet(PathNetConfig(input_dim=64), runs=2, seed=0, device="cpu")
    task = evolve(
        net,
        TaskData(x[:1000], y[:1000]),
        n_classes=10,
        config=EvolutionConfig(generations=8),
        seed=0,
        name="digits",
    )
    return net, task, x[1000:], y[1000:]


def test_predict_proba_is_a_distribution_per_run(trained) -> None:
    net, task, x, _ = trained
    for run in range(2):
        p = net.predict_proba(x, task, run=run)
        assert p.shape == (len(x), 10)
        torch.testing.assert_close(p.sum(1), torch.ones(len(x)))
    assert not torch.equal(net.predict_proba(x, task, run=0), net.predict_proba(x, task, run=1))
    other = task.population[0, 3]
    assert not torch.equal(
        net.predict_proba(x, task, run=0, path=other), net.predict_proba(x, task, run=0)
    )


def test_path_model_matches_supernet_and_round_trips(trained, tmp_path) -> None:
    net, task, x, _ = trained
    model = net.path_model(task, run=1)
    torch.testing.assert_close(
        model.predict_proba(x), net.predict_proba(x, task, run=1), rtol=1e-5, atol=1e-6
    )
    n_params = sum(p.numel() for p in model.parameters())
    distinct = [len(set(layer)) for layer in task.best_paths[1].tolist()]
    assert model.modules_per_layer == distinct
    assert (
        n_params
        == sum(k * 20 * d + k * 20 for k, d in zip(distinct, [64, 20, 20], strict=True))
        + 20 * 10
        + 10
    )
    torch.save({"config": model.config_dict(), "state": model.state_dict()}, tmp_path / "m.pt")
    blob = torch.load(tmp_path / "m.pt", weights_only=True)
    again = PathModel.from_config(blob["config"], blob["state"])
    torch.testing.assert_close(again(x), model(x))
    assert again.config_dict()["genotype"] == task.best_paths[1].tolist()


def test_bad_inputs_get_clear_errors(trained) -> None:
    net, task, x, _ = trained
    with pytest.raises(ValueError, match=r"shape \(n, 64\)"):
        net.predict_proba(x[:, :10], task)
    with pytest.raises(TypeError, match="floating point"):
        net.predict_proba((x * 16).long(), task)
    with pytest.raises(IndexError, match="run 5"):
        net.predict_proba(x, task, run=5)
    with pytest.raises(ValueError, match="format"):
        PathModel.from_config({"format": "something-else"})
    with pytest.raises(ValueError, match="max_active"):
        PathNetConfig(input_dim=4, modules=3, max_active=5)
    with pytest.raises(ValueError, match="combine"):
        PathNetConfig(input_dim=4, combine="max")
