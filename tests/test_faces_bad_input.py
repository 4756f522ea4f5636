"""Bad input through the whole pipeline: every problem is recorded, nothing else is lost.

One generic-layout tree (``<root>/<emotion>/<subject>/<file>``) built in a temp dir from
real media holds, next to good clips: a truncated video (a real clip cut in half), a
corrupt video (random bytes), an unreadable image, a file under an unknown label, an
empty class, a video with no face, a clip where the face comes and goes, and a photo
with several faces.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from pathnet_fer.faces import FaceDataset, FaceSettings, preprocess_dataset
from pathnet_fer.faces.extract import NO_FACE
from pathnet_fer.faces.summary import format_summary, summarise


@pytest.fixture(scope="module")
def bad_tree(require_data, tmp_path_factory) -> Path:
    media = require_data("face-media")
    crema = require_data("crema-d-sample") / "VideoFlash"
    root = tmp_path_factory.mktemp("bad-tree")

    def put(source: Path, emotion: str, subject: str, name: str | None = None) -> Path:
        target = root / emotion / subject / (name or source.name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        return target

    put(crema / "1001_DFA_ANG_XX.flv", "anger", "s1")  # a good clip
    put(media / "single_face.mp4", "happiness", "s2")  # a good clip
    put(media / "face_noface.mov", "surprise", "s3")  # the face comes and goes
    put(media / "no_face.mp4", "sadness", "s4")  # never a face
    put(media / "multi_face.jpg", "fear", "s5")  # several faces
    put(media / "single_face.jpg", "fear", "s6")  # a good image
    half = put(crema / "1001_DFA_HAP_XX.flv", "happiness", "s7", "truncated.flv")
    half.write_bytes(half.read_bytes()[: half.stat().st_size // 2])
    noise = np.random.default_rng(1).integers(0, 256, 40_000, dtype=np.uint8).tobytes()
    (root / "anger" / "s8").mkdir(parents=True)
    (root / "anger" / "s8" / "corrupt.mp4").write_bytes(noise)
    (root / "sadness" / "s9").mkdir(parents=True)
    (root / "sadness" / "s9" / "unreadable.png").write_bytes(noise[:5000])
    put(media / "single_face.jpg", "boredom", "s10")  # unknown label
    (root / "disgust").mkdir()  # an empty class
    return root


@pytest.fixture(scope="module")
def bad_run(bad_tree, tmp_path_factory) -> FaceDataset:
    # every 2nd frame: the same code paths at half the cost (the test budget is small)
    return preprocess_dataset(
        "generic",
        bad_tree,
        FaceSettings(every=2),
        cache_dir=tmp_path_factory.mktemp("bad-cache"),
        progress=False,
    )


def row(dataset: FaceDataset, name: str):
    found = dataset.manifest[dataset.manifest["path"].str.endswith(name)]
    assert len(found) == 1, f"{name} must appear once in the manifest"
    return found.iloc[0]


def test_good_clips_survive_bad_neighbours(bad_run):
    ok = bad_run.manifest[bad_run.manifest["status"] == "ok"]
    assert sorted(Path(p).name for p in ok["path"]) == [
        "1001_DFA_ANG_XX.flv", "face_noface.mov", "multi_face.jpg",
        "single_face.jpg", "single_face.mp4",
    ]  # fmt: skip
    assert row(bad_run, "single_face.mp4")["n_crops"] == 36  # 72 frames, every 2nd
    assert len(bad_run) == ok["n_crops"].sum() > 150
    assert (bad_run.frames.groupby("clip").size() == ok.set_index("clip")["n_crops"]).all()


def test_each_problem_is_recorded_with_its_reason(bad_run):
    truncated = row(bad_run, "truncated.flv")
    assert truncated["status"] == "skipped" and "truncated video" in truncated["reason"]
    corrupt = row(bad_run, "corrupt.mp4")
    assert corrupt["status"] == "skipped" and "video" in corrupt["reason"]
    unreadable = row(bad_run, "unreadable.png")
    assert unreadable["status"] == "skipped" and "cannot read image" in unreadable["reason"]
    no_face = row(bad_run, "no_face.mp4")
    assert no_face["status"] == "skipped" and no_face["reason"] == NO_FACE
    assert no_face["n_frames"] > 45 and no_face["n_crops"] == 0  # decoded, no face invented
    unknown = row(bad_run, "boredom/s10/single_face.jpg")
    assert unknown["status"] == "skipped" and "boredom" in unknown["reason"]
    empty = row(bad_run, "disgust")
    assert empty["status"] == "skipped" and "empty" in empty["reason"]
    s = summarise(bad_run)
    assert "disgust" in s["empty_classes"] and s["clips_skipped"] == 6
    text = format_summary(bad_run)
    for needle in ("truncated video", "corrupt.mp4", "unreadable.png", NO_FACE, "boredom",
                   "disgust", "fallbacks"):  # fmt: skip
        assert needle in text, needle


def test_face_comes_and_goes_uses_the_previous_face(bad_run):
    clip = row(bad_run, "face_noface.mov")
    frames = bad_run.frames[bad_run.frames["clip"] == clip["clip"]]
    assert clip["n_frames"] == len(frames) > 75
    assert 0 < clip["n_fallback"] < clip["n_frames"] and clip["n_detections"] > 10
    assert frames["fallback"].sum() == clip["n_fallback"]
    # a fallback frame carries the box of the last detected frame before it
    fresh = ~frames["fallback"].to_numpy()
    first_fresh = int(np.argmax(fresh))
    boxes = frames[["x", "y", "w", "h"]].to_numpy()
    for i in np.flatnonzero(~fresh):
        source = first_fresh if i < first_fresh else np.flatnonzero(fresh[:i])[-1]
        np.testing.assert_array_equal(boxes[i], boxes[source])


def test_several_faces_policy_is_applied_and_recorded(bad_run, bad_tree, tmp_path):
    photo = row(bad_run, "multi_face.jpg")
    # a still image has no previous frame: the largest face is taken and the count recorded
    assert photo["status"] == "ok" and photo["n_multi"] == 1 and photo["n_crops"] == 1
    assert summarise(bad_run)["multi_face_frames"] >= 1
    crop = bad_run.frames[bad_run.frames["clip"] == photo["clip"]]
    assert crop["w"].iloc[0] > 100  # the largest of the detected faces
    # a video where every frame shows several faces cannot follow anyone under the
    # paper's rule: skipped with the reason, never a made-up face
    from pathnet_fer.faces.extract import SEVERAL_FACES, extract_faces

    two = np.hstack([_read(bad_tree / "fear" / "s6" / "single_face.jpg")] * 2)
    video = _write_video(tmp_path / "two.mp4", [two] * 4)
    paper = extract_faces(str(video), FaceSettings(detect=True))
    assert paper.status == "skipped" and paper.reason == SEVERAL_FACES and paper.n_multi == 4
    strict = FaceSettings(detect=True, multi_face="nearest", recheck_every=1)
    nearest = extract_faces(str(video), strict)
    assert nearest.status == "ok" and nearest.n_crops == 4 and nearest.n_multi == 4
    # nearest keeps following the same face
    assert len({tuple(b) for b in nearest.boxes.tolist()}) <= 2
    # the quick search near the followed face sees only the full-frame rechecks' crowds
    quick = extract_faces(str(video), FaceSettings(detect=True, multi_face="nearest"))
    assert quick.n_crops == 4 and quick.n_multi == 1
    np.testing.assert_allclose(quick.boxes, nearest.boxes, atol=8)


def _read(path: Path) -> np.ndarray:
    from pathnet_fer.faces.video import read_image

    image = read_image(path)
    return image[: image.shape[0] // 2 * 2, : image.shape[1] // 2 * 2]


def _write_video(path: Path, frames: list[np.ndarray]) -> Path:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_rerun_keeps_everything_and_redoes_nothing(bad_run, bad_tree, tmp_path_factory):
    cache = Path(bad_run.report.cache_dir)
    entries = list((cache / "clips").glob("*.npz"))
    assert len(entries) == 9  # every decoded file has an entry, skipped ones included
    again = preprocess_dataset(
        "generic", bad_tree, bad_run.settings, cache_dir=cache.parent, progress=False
    )
    assert again.report.consolidated and again.report.processed == 0
    assert again.manifest.equals(bad_run.manifest)


def test_a_killed_run_keeps_its_work_and_resumes(require_data, tmp_path):
    """SIGKILL a real run after its first clip is cached; the next run finishes the rest."""
    import subprocess
    import sys
    import time

    root = require_data("crema-d-sample")
    cache = tmp_path / "cache"
    code = (
        "import sys; from pathnet_fer.faces import FaceSettings, preprocess_dataset; "
        "preprocess_dataset('crema-d', sys.argv[1], FaceSettings(every=4), "
        "cache_dir=sys.argv[2], workers=1, progress=False)"
    )
    run = subprocess.Popen([sys.executable, "-c", code, str(root), str(cache)])
    entries: list[Path] = []
    deadline = time.monotonic() + 180
    while not entries and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
        entries = list(cache.glob("*/clips/*.npz"))
    finished_alone = run.poll() is not None
    run.kill()
    run.wait()
    assert entries and not finished_alone, "the run must be killed after its first clip"
    assert not list(cache.glob("*/consolidated-*.npz"))  # it never reached the end
    resumed = preprocess_dataset(
        "crema-d", root, FaceSettings(every=4), cache_dir=cache, progress=False
    )
    report = resumed.report
    assert report.from_cache >= len(entries) >= 1
    assert report.processed + report.from_cache == 5 and report.processed < 5
    assert (resumed.manifest["status"] == "ok").sum() == 5
    assert len(resumed) == resumed.manifest["n_crops"].sum() > 60


def test_long_faceless_opening_is_decoded_twice_not_held(require_data, monkeypatch):
    """Frames before the first face beyond the memory cap are re-decoded: same crops."""
    import pathnet_fer.faces.extract as extract

    clip = str(require_data("face-media") / "noface_face.mov")  # the face shows up late
    settings = FaceSettings(detect=True, every=4)
    held = extract.extract_faces(clip, settings)
    first_fresh = int(np.argmax(~held.fallback))
    assert held.status == "ok" and first_fresh > 3 and held.fallback[:first_fresh].all()
    monkeypatch.setattr(extract, "MAX_PENDING_FRAMES", 2)
    capped = extract.extract_faces(clip, settings)
    np.testing.assert_array_equal(capped.images, held.images)
    np.testing.assert_array_equal(capped.frame_index, held.frame_index)
    np.testing.assert_array_equal(capped.boxes, held.boxes)


def test_max_gap_drops_frames_far_from_any_face(require_data):
    """face_noface.mov loses the face for good: the paper's rule crops the empty scene."""
    from pathnet_fer.faces.extract import extract_faces

    clip = str(require_data("face-media") / "face_noface.mov")
    paper = extract_faces(clip, FaceSettings(detect=True, every=4))
    capped = extract_faces(clip, FaceSettings(detect=True, every=4, max_gap=3))
    assert paper.n_dropped == 0 and paper.n_crops == paper.n_frames
    assert capped.n_dropped > 10 and capped.n_crops == capped.n_frames - capped.n_dropped
    assert capped.n_detections == paper.n_detections and capped.n_fallback <= paper.n_fallback
    kept = np.isin(paper.frame_index, capped.frame_index)
    np.testing.assert_array_equal(capped.images, paper.images[kept])


def test_a_worker_that_dies_does_not_hang_or_lose_the_run(require_data, tmp_path):
    """SIGKILL a worker process mid-run (as a decoder crash or the OOM killer would)."""
    import multiprocessing
    import os
    import signal
    import threading
    import time

    cache = tmp_path / "cache"
    killed: list[int] = []

    def kill_a_worker() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if list(cache.glob("*/clips/*.started")):
                workers = multiprocessing.active_children()
                if workers:
                    os.kill(workers[0].pid, signal.SIGKILL)
                    killed.append(workers[0].pid)
                    return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_a_worker, daemon=True)
    killer.start()
    faces = preprocess_dataset(
        "crema-d", require_data("crema-d-sample"), FaceSettings(every=4), cache_dir=cache,
        workers=2, progress=False,
    )  # fmt: skip
    killer.join(timeout=5)
    assert killed, "no worker was killed"
    assert faces.report.worker_deaths == 1
    assert (faces.manifest["status"] == "ok").sum() == 5  # the killed clip was redone
    assert not list(cache.glob("*/clips/*.started"))
