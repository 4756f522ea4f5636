"""The baseline runner on real CK+48 crops: same folds, same metrics format, resumable CLI."""

from __future__ import annotations

import numpy as np
import pytest

from pathnet_fer.baselines.settings import BaselineSettings, expand_arms, parse_weights_option
from pathnet_fer.cli import main


def _subset(data, index):
    from pathnet_fer.datasets.loading import LoadedDataset

    return LoadedDataset(
        data.name, data.faces.subset(index), data.x[index], data.y[index],
        data.subjects[index], data.clips[index], data.class_names,
    )  # fmt: skip


ONE_SET = ["sets=[{source: ckplus48, destination: ckplus48}]", "evolution.generations=1"]


@pytest.fixture()
def config(require_data):
    require_data("ckplus48")
    from pathnet_fer.experiments.config_loading import load_config

    return load_config("small", [*ONE_SET, "protocol.folds=3", "protocol.max_source_frames=300"])


def test_runner_writes_the_experiment_metrics_format_and_resumes(config, tmp_path):
    from pathnet_fer.baselines.runner import run_baselines
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.datasets import dataset_folds
    from pathnet_fer.experiments.metrics_log import COLUMNS

    full = load_dataset(config, "ckplus48")
    keep = np.isin(full.subjects, np.unique(full.subjects)[:45])  # a real slice: 45 subjects
    data = {"ckplus48": _subset(full, np.flatnonzero(keep))}
    settings = BaselineSettings.from_dict(
        {
            "models": "mobilenet_v2,mlp,progressive",
            "folds": [2],
            "max_samples": 320,
            "input_size": 32,
        }  # fmt: skip
    )
    lines: list[str] = []
    metrics = run_baselines(config, settings, tmp_path, datasets=data, progress=lines.append)
    assert tuple(metrics.columns) == COLUMNS
    arms = {"mobilenet_v2-head", "mlp-scratch", "mlp-finetune", "progressive"}
    assert set(metrics.arm) == arms
    assert set(metrics.fold) == {2} and set(metrics.experiment) == {"ckplus48->ckplus48"}
    test = metrics[metrics.split == "test"]
    # accuracy, macro_f1, uar, top_share at frame and clip level; confidence at frame level
    assert len(test) == len(arms) * 9
    assert test.value.between(0, 1).all()
    train = metrics[(metrics.split == "train") & (metrics.metric == "parameters")]
    params = dict(zip(train.arm, train.value, strict=True))
    assert params["mlp-scratch"] == 251_306 and params["progressive"] > params["mlp-scratch"]
    # The held-out subjects are exactly the PathNet arms' fold 2 test subjects.
    fold = dataset_folds(config, "ckplus48", data["ckplus48"])[1]
    n_test_clips = len(set(data["ckplus48"].clips[fold.test_index]))
    assert n_test_clips > 0
    summary = (tmp_path / "summary.md").read_text()
    assert all(arm in summary for arm in arms) and "1,600 samples" in summary
    assert (tmp_path / "baselines_config.yaml").exists()
    # Running again resumes: nothing is retrained, nothing duplicated.
    lines.clear()
    again = run_baselines(config, settings, tmp_path, datasets=data, progress=lines.append)
    assert len(again) == len(metrics) and all(line.startswith("skip") for line in lines)
    # Other settings in the same directory are refused, not mixed into one table.
    from pathnet_fer.baselines.settings import BaselineConfigError

    other = BaselineSettings.from_dict({**settings.to_dict(), "max_samples": 640})
    with pytest.raises(BaselineConfigError, match="max_samples"):
        run_baselines(config, other, tmp_path, datasets=data, progress=None)


def test_cli_missing_weights_fails_fast_with_options(config, tmp_path, capsys):
    code = main(["baseline", "small", "--models", "resnet18", "--weights", str(tmp_path / "x.pth"),
                 "--out", str(tmp_path / "run"), *[a for o in ONE_SET for a in ("--set", o)]])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "x.pth" in err and "resnet18=torchvision" in err
    assert not (tmp_path / "run" / "metrics.csv").exists()


def test_settings_refuse_unknown_models_and_keys():
    from pathnet_fer.baselines.settings import BaselineConfigError

    with pytest.raises(BaselineConfigError, match="known: resnet18"):
        BaselineSettings.from_dict({"models": "resnet18,alexnet"})
    with pytest.raises(BaselineConfigError, match="baselines.epochs"):
        BaselineSettings.from_dict({"epochs": 3})
    settings = BaselineSettings.from_dict(
        {"models": "resnet18,cifar,mlp", "finetune": "head,full", "weights": "resnet18=none"}
    )
    assert expand_arms(settings) == [
        ("resnet18", "full"),
        ("cifar", "full"),
        ("mlp-scratch", ""),
        ("mlp-finetune", ""),
    ]
    assert parse_weights_option("auto,mobilenet_v2=/w.pth") == {
        "*": "auto",
        "mobilenet_v2": "/w.pth",
    }


def test_baselines_section_of_an_experiment_config(tmp_path):
    """A ``baselines:`` section is read by the baseline command and kept out of the
    experiment config's strict validation."""
    from pathnet_fer.baselines.commands import load_with_baselines
    from pathnet_fer.experiments.config import CONFIG_DIR

    path = tmp_path / "study.yaml"
    path.write_text(
        f"extends: {CONFIG_DIR / 'small.yaml'}\n"
        "baselines:\n  models: [mobilenet_v2, mlp]\n  finetune: [head, full]\n  max_samples: 800\n"
    )
    config, section = load_with_baselines(str(path), ["baselines.input_size=64"])
    settings = BaselineSettings.from_dict(section)
    assert config.name == "small" and settings.max_samples == 800 and settings.input_size == 64
    assert [a for a, _ in expand_arms(settings)] == [
        "mobilenet_v2", "mobilenet_v2", "mlp-scratch", "mlp-finetune"
    ]  # fmt: skip
