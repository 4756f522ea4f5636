"""Frame decoding (PyAV) on real clips, and the clear error for bad media."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pathnet_fer.faces.video import MediaError, count_frames, iter_frames, read_image


@pytest.fixture(scope="module")
def single_face(require_data) -> Path:
    return require_data("face-media") / "single_face.mp4"


def cut(source: Path, target: Path, fraction: float) -> Path:
    data = source.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])
    return target


def test_iter_frames_every_frame_and_every_kth(single_face):
    frames = list(iter_frames(single_face))
    assert len(frames) == 72 == count_frames(single_face)
    index, timestamp, rgb = frames[10]
    assert index == 10 and rgb.dtype == np.uint8 and rgb.shape == (360, 640, 3)
    times = np.array([t for _, t, _ in frames])
    assert np.all(np.diff(times) > 0) and times[0] == pytest.approx(0.0, abs=0.05)
    assert times[-1] == pytest.approx(71 / 30, abs=0.05)  # 30 fps clip
    kth = [(i, f) for i, _, f in iter_frames(single_face, every=5, pixel_format="gray")]
    assert [i for i, _ in kth] == list(range(0, 72, 5))
    assert kth[0][1].shape == (360, 640)
    # every-k-th frames are the same pictures as in the full decode
    np.testing.assert_array_equal(kth[2][1].shape, frames[10][2].shape[:2])


def test_flv_from_crema_d_decodes(require_data):
    clip = next((require_data("crema-d-sample") / "VideoFlash").glob("*ANG*.flv"))
    frames = list(iter_frames(clip, pixel_format="gray"))
    assert len(frames) > 50 and frames[0][2].shape == (360, 480)


def test_truncated_video_raises_clear_error(require_data, tmp_path):
    clip = next((require_data("crema-d-sample") / "VideoFlash").glob("*HAP*.flv"))
    truncated = cut(clip, tmp_path / "half.flv", 0.5)
    with pytest.raises(MediaError, match="truncated video .*half.flv"):
        list(iter_frames(truncated))
    # the cut clip's frames are still readable on request (no silent loss of information)
    assert 0 < count_frames(truncated) < count_frames(clip)
    mp4 = cut(require_data("face-media") / "single_face.mp4", tmp_path / "head.mp4", 0.05)
    with pytest.raises(MediaError, match="head.mp4"):
        list(iter_frames(mp4))


def test_corrupt_and_unreadable_files(tmp_path):
    garbage = np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes()
    (tmp_path / "noise.mp4").write_bytes(garbage)
    (tmp_path / "noise.jpg").write_bytes(garbage)
    (tmp_path / "empty.avi").write_bytes(b"")
    for name in ("noise.mp4", "empty.avi"):
        with pytest.raises(MediaError, match=name):
            list(iter_frames(tmp_path / name))
    with pytest.raises(MediaError, match="cannot read image .*noise.jpg"):
        read_image(tmp_path / "noise.jpg")
    with pytest.raises(MediaError, match="noise.jpg"):
        list(iter_frames(tmp_path / "noise.jpg"))
    with pytest.raises(MediaError):
        list(iter_frames(tmp_path / "missing.mp4"))


def _write_clip(frames: list[np.ndarray], times: list[float], target: Path, rate: int) -> Path:
    """Encode RGB frames at the given presentation times (seconds; MPEG-4 Part 2), in a
    container announcing ``rate`` frames per second."""
    from fractions import Fraction

    import av

    with av.open(str(target), "w") as container:
        stream = container.add_stream("mpeg4", rate=rate)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for frame, time in zip(frames, times, strict=True):
            picture = av.VideoFrame.from_ndarray(frame, format="rgb24")
            picture.pts, picture.time_base = round(time * 1000), Fraction(1, 1000)
            container.mux(stream.encode(picture))
        container.mux(stream.encode())
    return target


def test_variable_frame_rate_clip_over_hours_is_whole_not_truncated(single_face, tmp_path):
    """3 frames spread over 10 hours (a variable-frame-rate MKV announcing 25 fps): its
    frames reach the announced end, so it is whole, though 10 h x 25 fps would be 900,001
    frames. Cut in half, a constant-rate MKV (no frame count in its header) is still
    reported truncated, by time."""
    from pathnet_fer.faces.video import frame_count_hint

    frames = [f for _, _, f in iter_frames(single_face)]
    sparse = _write_clip(frames[:3], [0.0, 18_000.0, 36_000.0], tmp_path / "vfr.mkv", 25)
    assert frame_count_hint(sparse) > 800_000  # what the header's nominal rate implies
    decoded = list(iter_frames(sparse, pixel_format="gray"))
    assert [i for i, _, _ in decoded] == [0, 1, 2]
    assert [t for _, t, _ in decoded] == pytest.approx([0.0, 18_000.0, 36_000.0])
    steady = _write_clip(frames, [i / 30 for i in range(len(frames))], tmp_path / "cfr.mkv", 30)
    assert len(list(iter_frames(steady))) == len(frames)
    half = cut(steady, tmp_path / "half.mkv", 0.5)
    with pytest.raises(MediaError, match=r"truncated video .*half.mkv: its frames end at"):
        list(iter_frames(half))
