"""``extends:`` from a config outside configs/: beside it first, then the shipped ones."""

from __future__ import annotations

import pytest

from pathnet_fer.experiments.config import ConfigError, load_config


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
