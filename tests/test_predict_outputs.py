"""``predict`` never destroys its input: outputs that are inputs (or each other), or that
cannot be written, are refused in one line before anything is read, written or removed."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from pathnet_fer.cli import main
from predict_support import trained_model


@pytest.fixture(scope="module")
def model_file(require_data, tmp_path_factory):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("predict-model")).path


@pytest.fixture
def clip(require_data, tmp_path) -> Path:
    copy = tmp_path / "clip.mp4"
    shutil.copy(require_data("face-media") / "single_face.mp4", copy)
    return copy


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


def test_out_that_is_the_input_is_refused_and_the_input_kept(model_file, clip, capsys):
    original = clip.read_bytes()
    status = main(["predict", "--model", str(model_file), str(clip), "--out", str(clip)])
    assert status == 1
    assert "is the input" in _one_error_line(capsys)
    assert clip.read_bytes() == original
    # Another name of the same file (a hard link) is the same input.
    link = clip.with_name("link.csv")
    os.link(clip, link)
    status = main(["predict", "--model", str(model_file), str(clip.parent), "--out", str(link)])
    assert status == 1
    assert "is the input" in _one_error_line(capsys)
    assert clip.read_bytes() == original


def test_annotate_onto_the_input_or_the_csv_is_refused(model_file, clip, tmp_path, capsys):
    original = clip.read_bytes()
    out = tmp_path / "preds.csv"
    argv = ["predict", "--model", str(model_file), str(clip), "--out", str(out)]
    assert main([*argv, "--annotate", str(clip)]) == 1
    assert "--annotate" in (line := _one_error_line(capsys)) and "is the input" in line
    assert clip.read_bytes() == original
    assert not out.exists()
    # The annotated video written to the per-frame CSV's path (or its summary's).
    video_out = tmp_path / "both.mp4"
    argv = ["predict", "--model", str(model_file), str(clip), "--out", str(video_out)]
    assert main([*argv, "--annotate", str(video_out)]) == 1
    assert "are the same file" in _one_error_line(capsys)
    assert not video_out.exists()


def test_predict_paths_refuses_annotating_over_an_input(model_file, clip):
    from pathnet_fer.predict import Predictor
    from pathnet_fer.predict.outputs import OutputError

    original = clip.read_bytes()
    with pytest.raises(OutputError, match="is the input"):
        Predictor.from_file(model_file).predict_paths([clip], annotate=clip)
    assert clip.read_bytes() == original


def _read_only_folder(tmp_path: Path) -> Path:
    """A folder this process cannot write into: chmod for a user, /sys for root."""
    if os.geteuid() != 0:
        folder = tmp_path / "locked"
        folder.mkdir()
        folder.chmod(0o555)
        return folder
    try:
        with tempfile.TemporaryFile(dir="/sys"):
            pass
    except OSError:
        return Path("/sys")
    pytest.skip("root can write everywhere here: no read-only folder to test with")


def test_out_into_a_read_only_folder_is_refused_before_any_file(
    model_file, require_data, tmp_path, capsys
):
    folder = _read_only_folder(tmp_path)
    media = require_data("face-media")
    out = folder / "preds.csv"
    try:
        status = main(["predict", "--model", str(model_file), str(media / "single_face.jpg"),
                       str(media / "multi_face.jpg"), "--out", str(out)])  # fmt: skip
        captured = capsys.readouterr()
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)
    assert status == 1
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --out"), err
    assert f"cannot write into {folder}" in err[0]
    assert not out.exists()


def test_evaluate_out_into_a_read_only_folder_is_refused_before_cropping(
    model_file, require_data, tmp_path, capsys
):
    folder = _read_only_folder(tmp_path)
    out = folder / "eval"
    try:
        status = main(["evaluate", str(model_file), "--dataset", "jaffe", "--root",
                       str(require_data("jaffe")), "--out", str(out), "--quiet"])  # fmt: skip
        captured = capsys.readouterr()
    finally:
        if folder != Path("/sys"):
            folder.chmod(0o755)
    assert status == 1
    err = [line for line in captured.err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith("error: --out"), err
    assert f"cannot write into {folder}" in err[0]
    assert captured.out == ""  # nothing was scored
