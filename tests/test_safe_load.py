"""No file the tool reads can run code: crafted pickles are refused, nothing executes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.baselines.weights import WeightsNotFoundError, read_state_dict
from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve, load_checkpoint
from pathnet_fer.evolution.checkpoint import FORMAT, VERSION, save_checkpoint
from pathnet_fer.pathnet import PathNet, PathNetConfig
from pathnet_fer.predict import ModelFileError, load_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class _Marker:
    """Unpickling this calls ``open(marker, "w")``: the file appears iff code ran."""

    def __init__(self, marker) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _poisoned(path, marker, payload: dict) -> None:
    torch.save({**payload, "net": _Marker(marker)}, path)


def test_poisoned_checkpoint_is_refused_and_runs_nothing(tmp_path) -> None:
    marker = tmp_path / "pwned"
    state = tmp_path / "checkpoints" / "job" / "state.pt"
    state.parent.mkdir(parents=True)
    _poisoned(state, marker, {"format": FORMAT, "version": VERSION, "task": None, "extra": {}})
    with pytest.raises(
        ValueError, match="not a pathnet-fer checkpoint: it holds Python objects"
    ) as info:
        load_checkpoint(state, device="cpu")
    assert not marker.exists(), "loading the checkpoint ran code from it"
    assert "weights_only" not in str(info.value)


def test_real_checkpoint_holds_plain_data_only(tmp_path) -> None:
    """A checkpoint the tool writes loads with the safe loader (no TorchVersion inside)."""
    rng = np.random.default_rng(0)
    x = rng.random((40, 16), dtype=np.float32)
    y = np.arange(40) % 3
    net = PathNet(PathNetConfig(input_dim=16, modules=4, max_active=2), runs=1, seed=0)
    task = evolve(
        net, TaskData(x, y), n_classes=3, config=EvolutionConfig(generations=1, minibatches=1)
    )
    path = save_checkpoint(tmp_path / "ck.pt", net, task, extra={"job": "j"})
    payload = torch.load(path, map_location="cpu", weights_only=True)
    assert type(payload["versions"]["torch"]) is str
    _, task2, extra = load_checkpoint(path, device="cpu")
    assert extra == {"job": "j"} and task2.generation == 1


def test_poisoned_model_file_is_refused_as_not_a_model_file(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    _poisoned(path, marker, {"format": "pathnet-fer-model", "format_version": 1})
    with pytest.raises(ModelFileError) as info:
        load_model(path)
    message = str(info.value)
    assert "is not a pathnet-fer model file" in message
    assert "weights_only" not in message and "trust" not in message
    assert "\n" not in message
    assert not marker.exists()


def test_poisoned_weights_file_is_refused(tmp_path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "w.pth"
    torch.save({"state_dict": {"a": torch.zeros(1)}, "x": _Marker(marker)}, path)
    with pytest.raises(WeightsNotFoundError, match="not a weights file"):
        read_state_dict(path)
    assert not marker.exists()


def test_foreign_file_message_has_no_unsafe_hint(tmp_path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a readable pathnet-fer model file") as info:
        load_model(path)
    assert "weights_only" not in str(info.value) and "\n" not in str(info.value)


def test_empty_file_and_folder_as_model_get_one_clear_line(tmp_path, capsys) -> None:
    from pathnet_fer.cli import main

    empty = tmp_path / "models" / "empty.pt"
    empty.parent.mkdir()
    empty.write_bytes(b"")
    with pytest.raises(ModelFileError, match="is empty"):
        load_model(empty)
    with pytest.raises(ModelFileError, match=r"is a folder, not a model file.*empty\.pt"):
        load_model(empty.parent)
    for model in (empty, empty.parent):
        assert main(["predict", "--model", str(model), "--info"]) != 0
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and len(err.splitlines()) == 1, err


def test_resuming_a_job_from_a_poisoned_checkpoint_runs_no_code(tmp_path, require_data) -> None:
    """The README's resume path: a run directory received from someone else."""
    from pathnet_fer.experiments.config_loading import load_config
    from pathnet_fer.experiments.execute import execute_job
    from pathnet_fer.experiments.job_plan import plan_jobs

    require_data("ckplus48")
    config = load_config(
        "small",
        [
            "sets=[{source: ckplus48, destination: ckplus48}]",
            "faces.size=16",
            "evolution.generations=2",
            "evolution.minibatches=2",
            "protocol.folds=2",
            "protocol.iterations=1",
            "logging.progress=false",
            "save_models=none",
        ],
    )
    job = plan_jobs(config)[0]
    state = tmp_path / "checkpoints" / job.job_id / "state.pt"
    state.parent.mkdir(parents=True)
    marker = tmp_path / "pwned"
    extra = {"job": job.job_id, "phase": 1}
    _poisoned(state, marker, {"format": FORMAT, "version": VERSION, "task": None, "extra": extra})
    with pytest.raises(ValueError, match="not a pathnet-fer checkpoint"):
        execute_job(job, config, tmp_path)
    assert not marker.exists()
    assert not (tmp_path / "jobs" / f"{job.job_id}.json").exists()


def test_checkpoint_of_an_older_version_with_a_torch_version_object_still_resumes(
    tmp_path,
) -> None:
    rng = np.random.default_rng(1)
    x, y = rng.random((30, 8), dtype=np.float32), np.arange(30) % 2
    net = PathNet(PathNetConfig(input_dim=8, modules=4, max_active=2), runs=1, seed=0)
    task = evolve(
        net, TaskData(x, y), n_classes=2, config=EvolutionConfig(generations=1, minibatches=1)
    )
    path = save_checkpoint(tmp_path / "ck.pt", net, task)
    payload = torch.load(path, weights_only=True)
    payload["versions"]["torch"] = torch.__version__  # what earlier versions stored
    assert type(payload["versions"]["torch"]) is not str
    torch.save(payload, path)
    _, task2, _ = load_checkpoint(path, device="cpu")
    assert task2.generation == 1
