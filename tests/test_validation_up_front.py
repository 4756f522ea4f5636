"""A whole resolved config is checked before anything is written (also by --dry-run)."""

from __future__ import annotations

import pytest

from pathnet_fer.cli import main
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config

BAD = [
    ("evolution.population=1", "population must be >= 2"),
    ("evolution.lr=0", "lr must be > 0"),
    ("evolution.lr=-0.1", "lr must be > 0"),
    ("evolution.generations=0", "generations must be >= 1"),
    ("evolution.mutation_boundary=bounce", "mutation_boundary must be one of"),
    ("executor.checkpoint_every=0", "checkpoint_every must be >= 1"),
    ("executor.threads=0", "threads must be >= 1"),
    ("executor.workers=-2", "workers must be >= 0"),
    ("faces.colour=blue", "faces"),
    ("datasets.jaffe.faces.size=32", r"ckplus48 crops are 48x48 grey but jaffe crops 32x32"),
]


@pytest.mark.parametrize(("override", "message"), BAD)
def test_bad_settings_are_refused_when_the_config_is_loaded(override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config("small", [override])


@pytest.mark.parametrize(("override", "message"), BAD[:4])
def test_dry_run_and_real_run_refuse_before_writing(override, message, tmp_path, capsys) -> None:
    out = tmp_path / "run"
    for extra in (["--dry-run"], []):
        code = main(["experiment", "small", "--out", str(out), "--set", override, *extra])
        assert code == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and len(err.splitlines()) == 1, err
        assert not out.exists(), "nothing may be written for a refused config"


def test_exponent_floats_are_numbers() -> None:
    assert load_config("small", ["evolution.lr=1e-2"]).evolution["lr"] == 0.01
    assert load_config("small", ["evolution.lr=5E-3"]).evolution["lr"] == 0.005
    with pytest.raises(ConfigError, match="expected a number"):
        load_config("small", ["evolution.lr=fast"])
