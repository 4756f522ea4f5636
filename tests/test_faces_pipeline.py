"""The face pipeline end to end on real data: CK+48, JAFFE, CREMA-D, the cache, the CLI."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

import pathnet_fer.faces.extract as extract_module
from pathnet_fer.cli import main as cli_main
from pathnet_fer.data.emotions import BASIC_EMOTIONS
from pathnet_fer.faces import FaceDataset, FaceSettings, preprocess_dataset
from pathnet_fer.faces.cache import dataset_cache_dir
from pathnet_fer.faces.summary import summarise

CREMA_SETTINGS = FaceSettings(every=2)


@pytest.fixture(scope="session")
def face_cache(tmp_path_factory) -> Path:
    """One cache shared by this module's tests (explicit: session fixtures run before the
    per-test environment of conftest is set)."""
    return tmp_path_factory.mktemp("face-cache")


@pytest.fixture(scope="session")
def ckplus(require_data, face_cache) -> FaceDataset:
    return preprocess_dataset(
        "ckplus48", require_data("ckplus48"), cache_dir=face_cache, progress=False
    )


@pytest.fixture(scope="session")
def crema(require_data, face_cache) -> FaceDataset:
    # every 2nd frame keeps the test within budget; every frame is covered elsewhere
    return preprocess_dataset(
        "crema-d",
        require_data("crema-d-sample"),
        CREMA_SETTINGS,
        cache_dir=face_cache,
        progress=False,
    )


def check_invariants(dataset: FaceDataset) -> None:
    """What every FaceDataset must satisfy, whatever the data."""
    s = dataset.settings
    assert dataset.images.dtype == np.uint8
    assert dataset.images.shape[1:] == (
        (s.size, s.size) if s.colour == "grey" else (s.size, s.size, 3)
    )
    assert len(dataset.frames) == len(dataset.images)
    ok = dataset.manifest[dataset.manifest["status"] == "ok"]
    assert ok["n_crops"].sum() == len(dataset)
    assert ok["n_fallback"].sum() == dataset.frames["fallback"].sum()
    assert set(dataset.frames["clip"]) == set(ok["clip"])
    names = np.array(dataset.class_names)
    np.testing.assert_array_equal(names[dataset.labels], dataset.frames["emotion"].to_numpy())
    skipped = dataset.manifest[dataset.manifest["status"] != "ok"]
    assert (skipped["reason"].str.len() > 0).all() and (skipped["n_crops"] == 0).all()
    features = dataset.features()
    assert features.dtype == np.float32 and features.shape == (
        len(dataset),
        s.size * s.size * s.channels,
    )
    assert 0.0 <= features.min() and features.max() <= 1.0


def test_ckplus48_pre_cropped_all_images(ckplus, require_data):
    check_invariants(ckplus)
    assert ckplus.settings.detect is False  # pre-cropped: the dataset default
    assert len(ckplus) == 927 and ckplus.images.shape == (927, 48, 48)
    ok = ckplus.manifest[ckplus.manifest["status"] == "ok"]
    assert len(ok) == 927
    assert ckplus.class_names == BASIC_EMOTIONS
    assert (ckplus.class_counts() > 0).all()
    assert ckplus.manifest["reason"].str.contains("contempt").sum() == 54
    # pre-cropped 48x48 PNGs go through untouched
    from pathnet_fer.faces.video import read_image

    first = ok.iloc[0]
    np.testing.assert_array_equal(ckplus.images[0], read_image(first["path"], "gray"))
    sub = ckplus.subset(ckplus.labels == 0)
    assert len(sub) == ckplus.class_counts()["anger"] and set(sub.frames["emotion"]) == {"anger"}


def test_second_run_reads_the_cache_and_decodes_nothing(
    ckplus, require_data, face_cache, monkeypatch
):
    assert ckplus.report.processed > 0 or ckplus.report.consolidated
    calls = []
    real = extract_module.iter_frames

    def counting(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(extract_module, "iter_frames", counting)
    again = preprocess_dataset(
        "ckplus48", require_data("ckplus48"), cache_dir=face_cache, workers=1, progress=False
    )
    assert again.report.consolidated and again.report.processed == 0 and calls == []
    np.testing.assert_array_equal(again.images, ckplus.images)
    assert again.frames.equals(ckplus.frames)
    # without the consolidated file, the per-clip entries are read: still nothing decoded
    for path in Path(again.report.cache_dir).glob("consolidated-*.npz"):
        path.unlink()
    third = preprocess_dataset(
        "ckplus48", require_data("ckplus48"), cache_dir=face_cache, workers=1, progress=False
    )
    assert third.report.processed == 0 and third.report.from_cache == 927 and calls == []
    np.testing.assert_array_equal(third.images, ckplus.images)


def test_changed_setting_rebuilds_and_resumes_after_a_kill(require_data, tmp_path):
    root = require_data("ckplus48")
    tree = tmp_path / "ck"
    for emotion in ("happy", "surprise"):
        (tree / emotion).mkdir(parents=True)
        for path in sorted((root / emotion).glob("*.png"))[:6]:
            shutil.copy2(path, tree / emotion / path.name)
    first = preprocess_dataset(
        "ckplus48", tree, cache_dir=tmp_path / "c", workers=1, progress=False
    )
    assert first.report.processed == 12
    bigger = preprocess_dataset(
        "ckplus48",
        tree,
        FaceSettings(size=32, colour="rgb"),
        cache_dir=tmp_path / "c",
        progress=False,
    )
    assert bigger.report.processed == 12 and bigger.images.shape == (12, 32, 32, 3)
    check_invariants(bigger)
    # a run killed half-way: consolidated file never written, some entries missing, a
    # half-written temp file left behind. The next run keeps the finished entries.
    cache_dir = Path(first.report.cache_dir)
    for path in cache_dir.glob("consolidated-*.npz"):
        path.unlink()
    entries = sorted((cache_dir / "clips").glob("*.npz"))
    for path in entries[:5]:
        path.unlink()
    (cache_dir / "clips" / ".deadbeef.npz.tmp").write_bytes(b"partial")
    entries[5].write_bytes(entries[5].read_bytes()[:100])  # a damaged entry is redone
    resumed = preprocess_dataset(
        "ckplus48", tree, cache_dir=tmp_path / "c", workers=1, progress=False
    )
    assert resumed.report.processed == 6 and resumed.report.from_cache == 6
    np.testing.assert_array_equal(resumed.images, first.images)
    # an edited file (new mtime) is processed again, the others come from the cache
    edited = sorted((tree / "happy").glob("*.png"))[0]
    edited.touch()
    import os

    os.utime(edited, ns=(edited.stat().st_atime_ns, edited.stat().st_mtime_ns + 10**9))
    after = preprocess_dataset(
        "ckplus48", tree, cache_dir=tmp_path / "c", workers=1, progress=False
    )
    assert after.report.processed == 1 and after.report.from_cache == 11


def test_crema_d_clips(crema):
    check_invariants(crema)
    assert crema.settings.detect is True
    manifest = crema.manifest
    ok = manifest[manifest["status"] == "ok"]
    assert len(ok) == 5 and set(ok["emotion"]) == {
        "anger",
        "disgust",
        "fear",
        "happiness",
        "sadness",
    }
    assert "NEU" in " ".join(manifest.loc[manifest["status"] != "ok", "path"])
    assert (ok["n_frames"] > 25).all() and (ok["n_crops"] == ok["n_frames"]).all()
    for _, rows in crema.frames.groupby("clip"):
        np.testing.assert_array_equal(rows["frame_index"], 2 * np.arange(len(rows)))
    # one actor, one face, filmed frontally: the face box is big and steady
    assert (crema.frames["w"] > 80).all()
    assert crema.frames.groupby("clip")["x"].std().max() < 15
    summary = summarise(crema)
    assert summary["clips_ok"] == 5 and summary["empty_classes"] == ["surprise"]


def test_crema_d_keep_neutral_reuses_clip_entries(crema, require_data, face_cache):
    seven = preprocess_dataset(
        "crema-d",
        require_data("crema-d-sample"),
        CREMA_SETTINGS,
        cache_dir=face_cache,
        keep_neutral=True,
        workers=1,
        progress=False,
    )
    check_invariants(seven)
    assert seven.class_names[-1] == "neutral" and len(seven.class_names) == 7
    assert (seven.manifest["status"] == "ok").sum() == 6
    assert seven.report.processed == 1 and seven.report.from_cache == 5


def test_jaffe_goes_through_the_detector(require_data, tmp_path):
    # two of the ten posers (the full set: 183 images, see docs/faces.md), MK included:
    # MK.DI3.130 shows a small false positive beside the face
    tree = tmp_path / "jaffe"
    tree.mkdir()
    for path in sorted(require_data("jaffe").glob("*.tiff")):
        if path.name.startswith(("MK.", "KA.")):
            shutil.copy2(path, tree / path.name)
    jaffe = preprocess_dataset("jaffe", tree, cache_dir=tmp_path / "cache", progress=False)
    check_invariants(jaffe)
    assert jaffe.settings.detect is True
    six = sum(1 for p in tree.iterdir() if ".NE" not in p.name)
    assert (jaffe.manifest["status"] == "ok").sum() == six == len(jaffe) > 30
    assert set(jaffe.frames["subject"]) == {"MK", "KA"}
    # 256x256 portraits: one big face each; a small false positive beside the face
    # (e.g. MK.DI3.130) is recorded, and the still image keeps its largest face
    assert (jaffe.frames["w"] > 100).all()
    assert jaffe.manifest["n_multi"].sum() >= 1


def test_cli_preprocess_prints_summary(require_data, face_cache, capsys, ckplus):
    code = cli_main(
        ["preprocess", "--dataset", "ckplus48", "--root", str(require_data("ckplus48")),
         "--cache", str(face_cache), "--no-progress"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert "927 clips ok, 54 skipped" in out and "consolidated cache" in out
    assert "contempt" in out
    code = cli_main(["preprocess", "--dataset", "nope", "--root", str(face_cache)])
    err = capsys.readouterr().err
    assert code == 2 and "unknown dataset" in err and "ckplus48" in err
    code = cli_main(["preprocess", "--dataset", "jaffe", "--root", str(face_cache / "missing")])
    assert code == 2 and "missing" in capsys.readouterr().err
    code = cli_main(["preprocess", "--dataset", "jaffe", "--root", str(face_cache), "--every", "0"])
    assert code == 2 and "every" in capsys.readouterr().err


def test_cache_directory_depends_on_settings(face_cache):
    a = dataset_cache_dir("jaffe", FaceSettings(detect=True), face_cache)
    b = dataset_cache_dir("jaffe", FaceSettings(detect=True, margin=0.2), face_cache)
    assert a != b and a.parent == b.parent == face_cache and a.name.startswith("jaffe-")
