"""Dataset adapters on the real shared data and on fixture trees built from real clips."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import av
import pandas as pd
import pytest

from fixture_trees import (
    ClipBank,
    FixtureTree,
    build_enterface_tree,
    build_generic_tree,
    build_ravdess_tree,
    build_savee_tree,
)
from pathnet_fer.data import commands
from pathnet_fer.data.adapter import SAMPLE_COLUMNS, SKIPPED_COLUMNS, DatasetRootError, ScanResult
from pathnet_fer.data.emotions import BASIC_EMOTIONS, class_names
from pathnet_fer.data.registry import (
    ADAPTERS,
    UnknownDatasetError,
    default_root,
    get_adapter,
    scan_dataset,
)


def _check_contract(result: ScanResult, name: str) -> None:
    """Invariants every scan must satisfy, whatever the dataset."""
    samples = result.samples
    assert tuple(samples.columns) == SAMPLE_COLUMNS
    assert tuple(result.skipped.columns) == SKIPPED_COLUMNS
    assert (samples["dataset"] == name).all()
    assert samples["path"].map(os.path.isabs).all()
    assert samples["path"].is_unique
    assert set(samples["emotion"]) <= set(result.class_names)
    assert set(samples["media"]) <= {"video", "image"}
    for column in ("subject", "clip", "label", "split"):
        assert samples[column].map(type).eq(str).all(), column
    assert (samples["subject"] != "").all() and (samples["clip"] != "").all()
    if get_adapter(name).unique_clips:
        assert samples["clip"].is_unique
    # every sample and every skip is a distinct file: nothing counted twice
    assert not set(samples["path"]) & set(result.skipped["path"])
    # deterministic order: a second scan gives the identical table
    again = get_adapter(name).scan(result.root, keep_neutral=result.keep_neutral)
    pd.testing.assert_frame_equal(samples, again.samples)


def _scan_tree(name: str, tree: FixtureTree, keep_neutral: bool) -> ScanResult:
    result = get_adapter(name).scan(tree.root, keep_neutral=keep_neutral)
    _check_contract(result, name)
    found = {
        str(Path(p).relative_to(tree.root)): (s, e)
        for p, s, e in result.samples[["path", "subject", "emotion"]].itertuples(index=False)
    }
    assert found == tree.expected_samples(keep_neutral)
    skipped = {
        str(Path(p).relative_to(tree.root)): r for p, r in result.skipped.itertuples(index=False)
    }
    expected = tree.expected_skipped(keep_neutral)
    assert set(skipped) == set(expected)
    for rel, phrase in expected.items():
        assert phrase in skipped[rel], (rel, skipped[rel])
    # label-space exclusions (neutral, calm, contempt) are told apart from problems
    excluded = {
        str(Path(p).relative_to(tree.root)) for p in result.skipped[result.excluded()]["path"]
    }
    label_out = {r for r, p in expected.items() if "keep_neutral=False" in p or "calm" in p}
    assert excluded == label_out
    assert len(result.problems()) == len(expected) - len(label_out)
    return result


# --- real data -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "folder", "six", "seven", "subjects"),
    [
        ("jaffe", "jaffe", 183, 213, 10),
        ("ckplus48", "ckplus48", 927, 927, 106),  # contempt (54 images) is always out
        ("crema-d", "crema-d-sample", 5, 6, 1),
    ],
)
def test_real_dataset_counts(require_data, name, folder, six, seven, subjects):
    root = require_data(folder)
    result = get_adapter(name).scan(root)
    _check_contract(result, name)
    assert len(result) == six
    assert result.samples["subject"].nunique() == subjects
    assert set(result.samples["emotion"]) <= set(BASIC_EMOTIONS)
    seven_class = get_adapter(name).scan(root, keep_neutral=True)
    assert len(seven_class) == seven
    # every file is accounted for: samples + skipped == files on disk
    files = sum(len(f) for _, _, f in os.walk(root / ("VideoFlash" if name == "crema-d" else "")))
    assert len(result) + len(result.skipped) == files
    assert len(seven_class) + len(seven_class.skipped) == files


def test_ckplus48_sequences_and_contempt(require_data):
    root = require_data("ckplus48")
    result = get_adapter("ckplus48").scan(root)
    samples = result.samples
    assert (samples["media"] == "image").all() and get_adapter("ckplus48").pre_cropped
    assert samples["subject"].str.fullmatch(r"S\d{3}").all()
    # the 3 frames of a sequence share a clip, and a clip never spans two subjects/emotions
    per_clip = samples.groupby("clip").agg(n=("path", "size"), s=("subject", "nunique"),
                                           e=("emotion", "nunique"))  # fmt: skip
    assert (per_clip["n"] == 3).all() and (per_clip["s"] == 1).all() and (per_clip["e"] == 1).all()
    assert len(per_clip) == 309  # 327 labelled sequences minus 18 contempt ones
    reasons = result.skip_reasons()
    assert reasons.sum() == len(list((root / "contempt").iterdir()))
    assert all("contempt" in r and "always excluded" in r for r in reasons.index)
    counts = result.counts_by("emotion")
    assert list(counts.index) == [e for e in BASIC_EMOTIONS if e in counts.index]
    assert counts["happiness"] == len(list((root / "happy").iterdir()))


def test_jaffe_labels_and_neutral(require_data):
    result = get_adapter("jaffe").scan(require_data("jaffe"))
    samples = result.samples
    assert not get_adapter("jaffe").pre_cropped  # full faces go through the detector
    assert (samples["clip"] == samples["path"].map(lambda p: Path(p).stem)).all()
    assert set(samples["label"]) == {"AN", "DI", "FE", "HA", "SA", "SU"}
    assert (result.skipped["reason"].str.contains("'NE' \\(neutral\\).*keep_neutral=False")).all()
    seven = get_adapter("jaffe").scan(require_data("jaffe"), keep_neutral=True)
    assert seven.class_names == class_names(True)
    assert seven.counts_by("emotion")["neutral"] == 30 and seven.skipped.empty


def test_crema_d_sample(require_data):
    result = scan_dataset("crema-d")  # default root: the shared copy
    assert result.root == require_data("crema-d-sample").resolve()
    assert set(result.samples["subject"]) == {"1001"}
    assert set(result.samples["label"]) == {"ANG", "DIS", "FEA", "HAP", "SAD"}
    assert (result.samples["media"] == "video").all()
    assert result.skipped["path"].str.endswith("1001_DFA_NEU_XX.flv").all()
    assert not result.warnings  # surprise is not expected of CREMA-D
    # the VideoFlash folder itself is accepted as root too
    direct = get_adapter("crema-d").scan(require_data("crema-d-sample") / "VideoFlash")
    pd.testing.assert_frame_equal(direct.samples, result.samples)


def test_fer2013_split_and_ids(require_data):
    root = require_data("fer2013")
    result = get_adapter("fer2013").scan(root, keep_neutral=True)
    _check_contract(result, "fer2013")
    samples = result.samples
    on_disk = {
        split: sum(len(files) for _, _, files in os.walk(root / split))
        for split in ("train", "test")
    }
    assert samples["split"].value_counts().to_dict() == on_disk
    assert (samples["subject"] == samples["clip"]).all() and samples["clip"].is_unique
    six = get_adapter("fer2013").scan(root)
    neutral = sum(len(os.listdir(root / s / "neutral")) for s in ("train", "test"))
    assert len(six) == len(samples) - neutral and len(six.skipped) == neutral


# --- fixture trees from the real CREMA-D clips -------------------------------------------


@pytest.fixture(scope="module")
def bank(require_data, tmp_path_factory) -> ClipBank:
    return ClipBank(require_data("crema-d-sample"), tmp_path_factory.mktemp("clips"), max_frames=10)


@pytest.mark.parametrize("suffix", [".avi", ".mp4"])
def test_transcoded_fixture_clip_decodes(bank, suffix):
    path = bank.clip("anger", suffix)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert suffix[1:] in container.format.name  # "avi" / "mov,mp4,m4a,..."
        assert stream.codec_context.name == {".avi": "mpeg4", ".mp4": "h264"}[suffix]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == bank.max_frames
    assert frames[0].shape == (360, 480, 3)
    assert frames[0].std() > 10  # real picture content, not a blank frame


@pytest.mark.parametrize("keep_neutral", [False, True])
def test_savee_fixture_tree(bank, tmp_path, keep_neutral):
    tree = build_savee_tree(tmp_path / "SAVEE", bank)
    result = _scan_tree("savee", tree, keep_neutral)
    assert set(result.samples["subject"]) == {"DC", "JE"}
    assert set(result.samples["label"]) >= {"sa", "su", "a", "d", "f", "h"}
    assert result.samples["clip"].is_unique  # n3 and n30 stay apart
    # the AudioVisualClip folder itself works as root, with the same samples
    direct = get_adapter("savee").scan(tree.root / "AudioVisualClip", keep_neutral=keep_neutral)
    assert list(direct.samples["path"]) == list(result.samples["path"])


@pytest.mark.parametrize("keep_neutral", [False, True])
def test_enterface_fixture_tree(bank, tmp_path, keep_neutral):
    tree = build_enterface_tree(tmp_path / "enterface05", bank)
    result = _scan_tree("enterface", tree, keep_neutral)
    assert set(result.samples["subject"]) == {"s1", "s5", "s7", "s11", "s23"}
    clips = set(result.samples["clip"])
    assert {"s1_ha_1", "s1_fe_3", "s23_an_1", "s23_sa_2", "s5_di_2"} <= clips
    assert any("subject" in w and "folder was used" in w for w in result.warnings)


def test_ravdess_fixture_tree(bank, tmp_path):
    tree = build_ravdess_tree(tmp_path / "RAVDESS", bank)
    result = _scan_tree("ravdess", tree, keep_neutral=False)
    assert set(result.samples["label"]) == {"03", "04", "05", "06", "07", "08"}
    assert set(result.samples["emotion"]) == set(BASIC_EMOTIONS)
    seven = _scan_tree("ravdess", tree, keep_neutral=True)
    assert "calm" not in set(seven.samples["emotion"])


@pytest.mark.parametrize("keep_neutral", [False, True])
def test_generic_fixture_tree_mixed_media_and_empty_class(
    bank, tmp_path, require_data, keep_neutral
):
    images = sorted(require_data("jaffe").glob("*.tiff"))[:3]
    tree = build_generic_tree(tmp_path / "mine", bank, images)
    result = _scan_tree("generic", tree, keep_neutral=keep_neutral)
    assert set(result.samples["media"]) == {"image", "video"}
    assert sum("empty class folder" in w for w in result.warnings) == 2


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any folder: permissions untestable")
def test_unreadable_class_folder_is_recorded(tmp_path, require_data):
    src = sorted(require_data("jaffe").glob("*.tiff"))[0]
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / "a.tiff").write_bytes(src.read_bytes())
    locked = tmp_path / "sad" / "p1"
    locked.mkdir(parents=True)
    locked.chmod(0)
    try:
        result = get_adapter("generic").scan(tmp_path)
    finally:
        locked.chmod(0o755)
    assert len(result) == 1
    assert result.problems()["reason"].str.contains("cannot read folder").any()


def test_symlinks_followed_once_and_broken_links_recorded(tmp_path, require_data):
    src = sorted(require_data("jaffe").glob("*.tiff"))[0]
    elsewhere = tmp_path / "elsewhere" / "p2"
    elsewhere.mkdir(parents=True)
    (elsewhere / "b.tiff").write_bytes(src.read_bytes())
    root = tmp_path / "root"
    (root / "happy" / "p1").mkdir(parents=True)
    (root / "happy" / "p1" / "a.tiff").symlink_to(src)
    (root / "happy" / "p2").symlink_to(elsewhere, target_is_directory=True)
    (root / "happy" / "p1" / "gone.tiff").symlink_to(tmp_path / "missing.tiff")
    (root / "happy" / "p1" / "loop").symlink_to(root / "happy", target_is_directory=True)
    result = get_adapter("generic").scan(root)
    assert sorted(result.samples["subject"]) == ["p1", "p2"]
    reasons = dict(
        zip(
            result.skipped["path"].map(lambda p: Path(p).name),
            result.skipped["reason"],
            strict=True,
        )
    )
    assert reasons["gone.tiff"] == "broken symbolic link"
    assert "link loop" in reasons["loop"]


def test_empty_and_missing_roots(tmp_path):
    with pytest.raises(DatasetRootError, match="does not exist"):
        get_adapter("jaffe").scan(tmp_path / "nope")
    result = get_adapter("savee").scan(tmp_path)
    assert result.samples.empty and tuple(result.samples.columns) == SAMPLE_COLUMNS
    assert any("no samples found" in w for w in result.warnings)


# --- registry and CLI --------------------------------------------------------------------


def test_registry_names_and_errors():
    assert set(ADAPTERS) == {
        "savee", "enterface", "crema-d", "ravdess", "ckplus48", "jaffe", "fer2013", "ferplus", "generic",
    }  # fmt: skip
    assert get_adapter("CREMA_D") is ADAPTERS["crema-d"]
    assert get_adapter("eNTERFACE'05") is ADAPTERS["enterface"]
    assert get_adapter("ck+48") is ADAPTERS["ckplus48"]
    with pytest.raises(UnknownDatasetError, match="known datasets: savee, enterface"):
        get_adapter("affectnet")
    with pytest.raises(DatasetRootError, match="--root"):
        default_root("savee")  # users bring their own SAVEE
    for adapter in ADAPTERS.values():
        assert (
            adapter.description and adapter.layout and adapter.media in {"video", "image", "mixed"}
        )


def main(argv: list[str]) -> int:
    """``pathnet-fer`` with only this stage's sub-commands (the full CLI imports torch)."""
    parser = argparse.ArgumentParser(prog="pathnet-fer")
    commands.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_lists_and_inspects(require_data, capsys, tmp_path):
    assert main(["datasets"]) == 0
    listing = capsys.readouterr().out
    for name in ADAPTERS:
        assert name in listing
    csv = tmp_path / "jaffe.csv"
    root = require_data("jaffe")
    assert (
        main(["datasets", "inspect", "jaffe", "--root", str(root), "--samples-csv", str(csv)]) == 0
    )
    report = capsys.readouterr().out
    assert "183 samples" in report and "10 subject(s)" in report
    assert "30 skipped (30 excluded by label, 0 problems)" in report
    assert "keep_neutral=False" in report and "KA" in report
    assert len(pd.read_csv(csv)) == 183
    assert main(["datasets", "inspect", "jaffe", "--root", str(root), "--keep-neutral"]) == 0
    assert "213 samples" in capsys.readouterr().out
    assert main(["datasets", "inspect", "nosuch", "--root", str(root)]) == 2
    assert "known datasets" in capsys.readouterr().err
    assert main(["datasets", "inspect", "savee", "--root", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
