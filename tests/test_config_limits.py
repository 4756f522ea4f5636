"""Sizes have upper bounds, checked when the config is read (before a run directory
exists): a YAML alias bomb under a known key, absurd iterations, population or crop
size, a network too big for this machine. Messages never carry an unbounded value."""

from __future__ import annotations

import time

import pytest

from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config


def _alias_bomb(levels: int) -> str:
    """``[&a [lol x9], &b [*a x9], ...]``: 9**levels strings once aliases are expanded."""
    items = ["&a [" + ", ".join(["lol"] * 9) + "]"]
    for i in range(1, levels):
        name, prev = chr(ord("a") + i), chr(ord("a") + i - 1)
        items.append(f"&{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    return "[" + ", ".join(items) + "]"


@pytest.mark.parametrize("levels", [6, 9])
@pytest.mark.parametrize("key", ["root", "splits"])
def test_alias_bomb_under_a_known_key_is_refused_at_once(tmp_path, key, levels):
    config = tmp_path / "bomb.yaml"
    config.write_text(f"extends: small\ndatasets:\n  jaffe:\n    {key}: {_alias_bomb(levels)}\n")
    start = time.monotonic()
    with pytest.raises(ConfigError) as refused:
        load_config(config, [f"cache_dir={tmp_path}"])
    assert time.monotonic() - start < 5
    message = str(refused.value)
    assert len(message) < 500, len(message)
    assert "more than 100,000 values once its YAML aliases" in message


def test_alias_bomb_in_a_set_override_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="more than 100,000 values") as refused:
        load_config("small", [f"cache_dir={tmp_path}", f"datasets.jaffe.splits={_alias_bomb(9)}"])
    assert len(str(refused.value)) < 500


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("protocol.iterations=1001", "protocol.iterations: 1001 is over the limit of 1,000"),
        ("protocol.iterations=1000000000", "protocol.iterations: 1000000000 is over the limit"),
        ("evolution.population=10001", "evolution.population: 10001 is over the limit of 10,000"),
        ("evolution.population=1000000000", "evolution.population: 1000000000 is over the limit"),
        ("faces.size=1025", "faces.size: 1025 is over the limit of 1,024"),
        ("faces.size=100000", "faces.size: 100000 is over the limit of 1,024"),
        ("datasets.jaffe.faces={size: 100000}", "datasets.jaffe.faces.size: 100000 is over"),
        ("datasets.jaffe.n_folds=1000", "datasets.jaffe.n_folds: 1000 is over the limit of 100"),
        ("evolution.generations=1000000000", "evolution.generations: 1000000000 is over"),
        ("pathnet.channels=[8, 16, 100000]", "pathnet.channels: 100000 is over the limit"),
    ],
)
def test_sizes_over_their_limits_are_refused_when_read(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[")):
        load_config("small", [f"cache_dir={tmp_path}", override])


def test_a_network_too_big_for_this_machine_is_refused(tmp_path, monkeypatch):
    """Within every limit, the largest job's memory is estimated against the machine's
    (8 GiB here): 65,536 units per module make a 3,900 GiB network."""
    import pathnet_fer.experiments.limits as limits

    monkeypatch.setattr(limits, "machine_memory", lambda: 8 * 2**30)
    with pytest.raises(ConfigError, match=r"the largest job would need about [\d,.]+ GiB") as e:
        load_config("small", [f"cache_dir={tmp_path}", "pathnet.units=65536"])
    assert "this machine has 8.0 GiB" in str(e.value)
    load_config("paper", [f"cache_dir={tmp_path}"])  # the paper's study fits


def test_absurd_iterations_leave_no_run_directory(tmp_path, capsys):
    from pathnet_fer.cli import main

    out = tmp_path / "run"
    argv = ["experiment", "small", "--out", str(out), "--set", "protocol.iterations=1000000000"]
    assert main([*argv, "--set", f"cache_dir={tmp_path}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "protocol.iterations: 1000000000 is over the limit" in err[0]
    assert not out.exists()
