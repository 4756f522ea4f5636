"""Experiment configs: shipped files load, overrides are type-checked, typos are refused."""

from __future__ import annotations

import pytest
import yaml

from pathnet_fer.experiments.config import (
    CONFIG_DIR,
    ConfigError,
    apply_overrides,
    find_config,
    load_raw,
)
from pathnet_fer.experiments.config_loading import build_config, load_config


@pytest.mark.parametrize(
    "name",
    ["paper", "ckplus-jaffe", "small", "demo", "demo-pooled", "fer2013-transfer", "pretrained"],
)
def test_shipped_configs_load_with_every_default(name):
    config = load_config(name)
    assert config.sets, name
    # Foreign sections are filled with the owning stages' defaults.
    assert config.evolution["population"] == 20
    assert config.pathnet["modules"] == 20 and "input_dim" not in config.pathnet
    assert "image_shape" not in config.pathnet
    assert config.faces["size"] == 48
    # The resolved config round-trips through YAML.
    again = build_config(yaml.safe_load(config.to_yaml()))
    assert again.to_dict() == config.to_dict()


def test_small_extends_ckplus_jaffe_and_demo_goes_through_fer2013():
    full, small = load_config("ckplus-jaffe"), load_config(CONFIG_DIR / "small.yaml")
    assert [s.name for s in small.sets] == [s.name for s in full.sets]
    assert small.evolution["generations"] < full.evolution["generations"] == 1000
    assert (full.protocol.folds, full.protocol.iterations) == (6, 4)
    assert small.datasets.keys() == full.datasets.keys()
    demo, study = load_config("demo"), load_config("fer2013-transfer")
    assert {s.source for s in demo.sets} == {"fer2013"} and demo.protocol.final_fit
    assert demo.pathnet["module"] == study.pathnet["module"] == "conv"
    assert [s.chain for s in study.sets] == [
        ["fer2013", "ckplus48"],
        ["fer2013", "jaffe"],
        ["fer2013", "ckplus48", "jaffe"],
    ]
    assert (study.protocol.folds, study.protocol.iterations) == (6, 4)


def test_overrides_change_values_and_check_types():
    config = load_config(
        "small",
        [
            "evolution.generations=7",
            "protocol.iteration_mode=chained",
            "sets.0.destination=ckplus48",
            "evolution.lr=1",
        ],
    )
    assert config.evolution["generations"] == 7
    assert config.evolution["lr"] == 1.0 and isinstance(config.evolution["lr"], float)
    assert config.protocol.iteration_mode == "chained"
    assert config.sets[0].destination == "ckplus48"
    assert config.generations("destination") == 7
    with pytest.raises(ConfigError, match="evolution.generations: expected an integer"):
        load_config("small", ["evolution.generations=many"])
    with pytest.raises(ConfigError, match="protocol.folds: expected an integer"):
        load_config("small", ["protocol.folds=2.5"])
    with pytest.raises(ConfigError, match="iteration_mode"):
        load_config("small", ["protocol.iteration_mode=sometimes"])


def test_unknown_keys_are_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match=r"unknown key\(s\) protocol.fold;.*folds"):
        load_config("small", ["protocol.fold=3"])
    with pytest.raises(ConfigError, match=r"evolution.generation\b.*generations"):
        load_config("small", ["evolution.generation=3"])
    with pytest.raises(ConfigError, match="input_dim is derived"):
        load_config("small", ["pathnet.input_dim=10"])
    with pytest.raises(ConfigError, match="datasets.jaffe.faces.sise"):
        load_config("small", ["datasets.jaffe.faces.sise=3"])
    with pytest.raises(ConfigError, match="not defined under datasets"):
        load_config("small", ["sets.0.source=savee"])
    with pytest.raises(ConfigError, match="adapter.*unknown"):
        load_config("small", ["datasets.jaffe.adapter=nope"])
    with pytest.raises(ConfigError, match="key.sub=value"):
        apply_overrides({}, ["evolution.generations"])
    with pytest.raises(ConfigError, match="list index"):
        load_config("small", ["sets.9.source=jaffe"])


def test_config_files_found_by_name_or_path(tmp_path):
    assert find_config("demo") == CONFIG_DIR / "demo.yaml"
    own = tmp_path / "mine.yaml"
    own.write_text(f"extends: {CONFIG_DIR / 'small.yaml'}\nname: mine\nseed: 5\n")
    config = load_config(own)
    assert (config.name, config.seed) == ("mine", 5)
    assert load_raw(own)["protocol"]["folds"] == 2
    with pytest.raises(ConfigError, match="not found.*shipped configs: .*demo"):
        find_config("no-such-config")
    bad = tmp_path / "bad.yaml"
    bad.write_text("protocol: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
