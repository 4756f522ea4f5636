"""``--dry-run`` runs nothing: no face cache is built; folds are shown once it exists."""

from __future__ import annotations

from pathnet_fer.cli import main
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.config_loading import load_config


def test_dry_run_never_builds_the_face_cache(require_data, tmp_path, capsys) -> None:
    require_data("ckplus48")
    require_data("jaffe")
    cache = tmp_path / "cache"
    sets = ["--set", f"cache_dir={cache}", "--set", "faces.size=16", "--set", "protocol.folds=2"]
    argv = ["experiment", "small", "--dry-run", "--out", str(tmp_path / "run"), *sets]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "# folds: not shown: the face crops of" in out
    assert not cache.exists() or not any(cache.rglob("*")), "a dry run wrote the cache"
    assert not (tmp_path / "run").exists()
    config = load_config("small", [s for s in sets if s != "--set"])
    for name in ("ckplus48", "jaffe"):
        load_dataset(config, name, workers=1)
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "not shown" not in out and "subjects" in out
