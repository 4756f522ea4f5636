"""``extends:`` from a config outside configs/: beside it first, then the shipped ones."""

from __future__ import annotations

import pytest

from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config


@pytest.mark.parametrize("parent", ["demo", "demo.yaml"])
def test_extends_a_shipped_config_from_anywhere(parent, tmp_path) -> None:
    mine = tmp_path / "mine.yaml"
    mine.write_text(f"extends: {parent}\nname: mine\nseed: 5\n")
    config = load_config(mine)
    assert config.name == "mine" and config.seed == 5
    assert config.to_dict()["sets"] == load_config("demo").to_dict()["sets"]


def test_a_config_beside_wins_and_missing_parent_is_clear(tmp_path) -> None:
    (tmp_path / "demo.yaml").write_text("extends: demo\nname: local-demo\n")  # shadows, extends
    (tmp_path / "mine.yaml").write_text("extends: demo\nseed: 3\n")
    config = load_config(tmp_path / "mine.yaml")
    assert config.name == "local-demo" and config.seed == 3
    (tmp_path / "bad.yaml").write_text("extends: nothing-here\n")
    with pytest.raises(ConfigError, match="extends 'nothing-here', found neither beside it"):
        load_config(tmp_path / "bad.yaml")


def test_a_deep_extends_chain_is_one_clear_line(tmp_path, capsys) -> None:
    """1,500 configs each extending the next: a depth limit, not a RecursionError."""
    from pathnet_fer.cli import main

    (tmp_path / "c0.yaml").write_text("extends: small\n")
    for i in range(1, 1500):
        (tmp_path / f"c{i}.yaml").write_text(f"extends: c{i - 1}.yaml\n")
    top = tmp_path / "c1499.yaml"
    with pytest.raises(ConfigError, match=r"extends: chain is more than 32 configs deep"):
        load_config(top)
    assert main(["experiment", str(top), "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{top}: its extends: chain is more than 32" in err[0], err
    assert load_config(tmp_path / "c25.yaml").name == "small"  # 28 configs deep: fine


def test_a_config_path_that_is_a_directory_says_so(tmp_path, capsys) -> None:
    from pathnet_fer.cli import main

    (tmp_path / "mine.yaml").write_text("extends: small\n")
    with pytest.raises(
        ConfigError, match=r"is a directory, not a YAML file \(YAML files in it: mine.yaml\)"
    ):
        load_config(tmp_path)
    assert main(["experiment", str(tmp_path), "--dry-run"]) == 2
    assert "is a directory, not a YAML file" in capsys.readouterr().err
