"""The shared source store verifies what it reuses: a swapped, edited or truncated entry
is reported in one line naming the file and rebuilt, never believed, never fatal.

One tiny real study (a small FER-2013 tree as the source, JAFFE as the destination, two
iterations: two source units, two store keys) fills a store; each test damages a copy of
that store as a user could and runs the same study into a new directory against it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
import torch

from fixture_trees import fer_subset
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.runner import run_experiment


def study_settings(fer: Path, cache: Path) -> list[str]:
    return [
        f"datasets.fer2013={{adapter: fer2013, root: {fer}, folds: fixed}}",
        "sets=[{source: fer2013, destination: jaffe}]",
        "faces.size=16",
        "evolution.generations=2",
        "evolution.minibatches=2",
        "protocol.source_generations=3",
        "protocol.eval_every=2",
        "protocol.folds=2",
        "protocol.iterations=2",
        "protocol.final_fit=false",
        "protocol.reuse_sources=true",
        "save_models=none",
        "logging.progress=false",
        f"cache_dir={cache}",
    ]


@pytest.fixture(scope="module")
def first_study(tmp_path_factory, require_data):
    require_data("jaffe")
    base = tmp_path_factory.mktemp("store")
    fer = fer_subset(require_data("fer2013"), base / "fer", train=12, test=4)
    cache = tmp_path_factory.getbasetemp() / "cache"  # the session's crops, reused
    config = load_config("small", study_settings(fer, cache))
    result = run_experiment(config, base / "first", executor=InlineExecutor(), quiet=True)
    keys = {r["job_id"]: r["key"] for r in _sources(base / "first").values()}
    assert len(set(keys.values())) == 2 and all(r == "" for r in _reused(base / "first"))
    return base, fer, cache, keys, result


def _sources(run: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in (run / "jobs").glob("source__*.json")}


def _reused(run: Path) -> list[str]:
    return [r["reused"] for _, r in sorted(_sources(run).items())]


def _own_store(first_study, tmp_path: Path) -> Path:
    """A cache dir sharing the session's face crops, with a copy of the filled store."""
    _, _, cache, _, _ = first_study
    own = tmp_path / "cache"
    own.mkdir()
    for entry in cache.iterdir():
        if entry.name != "sources":
            (own / entry.name).symlink_to(entry)
    (own / "sources").mkdir()
    for key in first_study[3].values():
        shutil.copyfile(cache / "sources" / f"{key}.pt", own / "sources" / f"{key}.pt")
    return own


def _again(first_study, cache: Path, out: Path):
    _, fer, _, _, _ = first_study
    config = load_config("small", study_settings(fer, cache))
    return run_experiment(config, out, executor=InlineExecutor(), quiet=True)


def _same_figures(first, again) -> None:
    a, b = (
        m[m.metric != "train_seconds"].reset_index(drop=True)
        for m in (first.metrics, again.metrics)
    )
    pd.testing.assert_frame_equal(a, b)


def _store_lines(run: Path, entry: Path) -> list[str]:
    return [line for line in (run / "log.txt").read_text().splitlines() if str(entry) in line]


def test_an_intact_store_is_reused(first_study, tmp_path):
    *_, result = first_study
    out = tmp_path / "again"
    again = _again(first_study, _own_store(first_study, tmp_path), out)
    assert _reused(out) == ["store", "store"]
    _same_figures(result, again)


def test_other_training_code_never_reuses_the_store(first_study, tmp_path, monkeypatch):
    """A change to how a source trains or chooses its path (a new fingerprint of the
    training packages) makes new keys: the intact store is not reused."""
    from pathnet_fer.experiments import source_store

    monkeypatch.setattr(source_store, "code_fingerprint", lambda: "other-training-code")
    out = tmp_path / "again"
    _again(first_study, _own_store(first_study, tmp_path), out)
    assert _reused(out) == ["", ""]
    assert set(first_study[3].values()).isdisjoint(r["key"] for r in _sources(out).values())


def test_code_fingerprint_follows_the_training_packages_only(tmp_path, monkeypatch):
    import pathnet_fer
    from pathnet_fer.experiments import source_store

    root = Path(pathnet_fer.__file__).resolve().parent
    copy = tmp_path / "pathnet_fer"
    for package in (*source_store.TRAINING_PACKAGES, "predict"):
        shutil.copytree(root / package, copy / package)
    monkeypatch.setattr(pathnet_fer, "__file__", str(copy / "__init__.py"))

    def fingerprint() -> str:
        source_store.code_fingerprint.cache_clear()
        return source_store.code_fingerprint()

    try:
        original = fingerprint()
        (copy / "predict" / "predictor.py").write_text("# another predictor\n")
        assert fingerprint() == original  # not training code
        chooser = copy / "evolution" / "evaluate.py"
        chooser.write_text(chooser.read_text() + "\n# a changed rule\n")
        assert fingerprint() != original
    finally:
        monkeypatch.undo()
        source_store.code_fingerprint.cache_clear()


def test_a_swapped_store_entry_is_rebuilt_not_reused(first_study, tmp_path):
    """Finding 2: another key's artifact under this key was reused (other figures)."""
    *_, keys, result = first_study
    cache = _own_store(first_study, tmp_path)
    one, two = (cache / "sources" / f"{keys[f'source__fer2013__fold1__it{i}']}.pt" for i in (1, 2))
    shutil.copyfile(two, one)
    out = tmp_path / "again"
    again = _again(first_study, cache, out)
    assert _reused(out) == ["", "store"]  # iteration 1 trained again, 2 reused
    (line,) = _store_lines(out, one)
    assert "holds the artifact of key" in line and keys["source__fer2013__fold1__it2"] in line
    assert "trained again" in line
    _same_figures(result, again)
    # The entry is rewritten with the right artifact: the next study reuses it.
    _again(first_study, cache, tmp_path / "third")
    assert _reused(tmp_path / "third") == ["store", "store"]


def test_an_edited_store_entry_is_rebuilt_not_believed(first_study, tmp_path):
    """Finding 7: an artifact whose test accuracy was set to 0.99 was believed."""
    *_, keys, result = first_study
    cache = _own_store(first_study, tmp_path)
    entry = cache / "sources" / f"{keys['source__fer2013__fold1__it1']}.pt"
    artifact = torch.load(entry, weights_only=True)
    artifact["task"]["test_accuracy"] = [0.99]
    artifact["metrics"] = artifact["metrics"].replace("accuracy,0.", "accuracy,0.99")
    torch.save(artifact, entry)
    out = tmp_path / "again"
    again = _again(first_study, cache, out)
    assert _reused(out) == ["", "store"]
    (line,) = _store_lines(out, entry)
    assert "does not match its content checksum" in line
    assert _sources(out)["source__fer2013__fold1__it1"]["test_accuracy"] != 0.99
    _same_figures(result, again)


def test_a_truncated_store_entry_is_reported_in_one_line_and_rebuilt(first_study, tmp_path):
    """Finding 3: torch's raw zip error failed the source job, and every re-run."""
    *_, keys, result = first_study
    cache = _own_store(first_study, tmp_path)
    entry = cache / "sources" / f"{keys['source__fer2013__fold1__it2']}.pt"
    entry.write_bytes(entry.read_bytes()[: entry.stat().st_size // 2])
    out = tmp_path / "again"
    again = _again(first_study, cache, out)  # no job fails
    assert _reused(out) == ["store", ""]
    (line,) = _store_lines(out, entry)
    assert "is damaged (unreadable" in line and "trained again" in line
    assert "Traceback" not in (out / "log.txt").read_text()
    _same_figures(result, again)
    from pathnet_fer.experiments.source_store import load_artifact

    assert load_artifact(entry)["key"] == entry.stem  # rewritten whole


def test_a_damaged_run_copy_is_named_and_its_source_job_reset(first_study, tmp_path):
    """A transfer job reading a damaged copy in its run directory names the file, and
    re-running the command then rebuilds it (the advice it gives holds)."""
    from pathnet_fer.experiments.job_plan import plan_jobs
    from pathnet_fer.experiments.sources import load_sources

    base, fer, _, keys, _ = first_study
    run = tmp_path / "run"
    shutil.copytree(base / "first", run)
    config = load_config("small", study_settings(fer, _own_store(first_study, tmp_path)))
    copy = run / "sources" / f"{keys['source__fer2013__fold1__it1']}.pt"
    copy.write_bytes(copy.read_bytes()[:1000])
    units = [j for j in plan_jobs(config) if j.arm == "source"]
    with pytest.raises(RuntimeError) as failed:
        load_sources(config, run, units)
    message = str(failed.value)
    assert str(copy) in message and "\n" not in message and "re-run the same command" in message
    assert not (run / "jobs" / "source__fer2013__fold1__it1.json").exists()
    assert (run / "jobs" / "source__fer2013__fold1__it2.json").exists()
