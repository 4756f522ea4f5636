"""``pathnet-fer predict``: folders/globs in, CSV + summary out, bad inputs skipped."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from pathnet_fer.cli import main
from pathnet_fer.faces.video import count_frames
from pathnet_fer.predict.columns import columns, read_predictions
from predict_support import trained_model


@pytest.fixture(scope="module")
def model_file(require_data, tmp_path_factory):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("predict-model")).path


def test_cli_processes_good_inputs_and_reports_bad_ones(model_file, require_data, tmp_path, capsys):
    crema = require_data("crema-d-sample") / "VideoFlash"
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    good = [crema / "1001_DFA_SAD_XX.flv", crema / "1001_DFA_NEU_XX.flv"]
    for clip in good:
        shutil.copy(clip, inputs / clip.name)
    # A clip cut to a third of its bytes, and a file that is no video at all.
    data = good[0].read_bytes()
    (inputs / "cut.flv").write_bytes(data[: len(data) // 3])
    (inputs / "broken.mp4").write_bytes(b"\x00" * 4096)
    out = tmp_path / "out" / "preds.csv"

    status = main(["predict", "--model", str(model_file), str(inputs), str(tmp_path / "nothing*.mp4"),
                   "--out", str(out), "--every", "2", "--quiet"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 3  # results written, some inputs skipped
    assert "broken.mp4" in captured.err and "cut.flv" in captured.err
    assert "nothing*.mp4" in captured.err

    table = read_predictions(str(out))
    assert list(table.columns) == columns(
        ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    )
    for clip in good:
        rows = table[table["file"] == str((inputs / clip.name).resolve())]
        assert len(rows) == (count_frames(clip) + 1) // 2
        assert rows["frame"].tolist() == list(range(0, count_frames(clip), 2))
    assert not table["file"].str.endswith("broken.mp4").any()
    # The cut clip keeps the frames that decoded, and is reported as truncated.
    cut_rows = int(table["file"].str.endswith("cut.flv").sum())
    assert 0 < cut_rows < len(table) / 2
    assert f"truncated video {inputs / 'cut.flv'}" in captured.err
    assert f"({cut_rows} rows kept)" in captured.err

    summary = pd.read_csv(out.with_name("preds.summary.csv"))
    assert set(summary["file"]) == set(table["file"])
    good_rows = summary[summary["file"].str.contains("1001_DFA_")]
    assert (good_rows["frames_with_face"] == good_rows["frames"]).all()
    assert good_rows["emotion_majority"].notna().all()
    assert "majority" in captured.out


def test_cli_refuses_a_bad_model_and_explains(tmp_path, require_data, capsys):
    bad = tmp_path / "model.pt"
    bad.write_bytes(b"PK\x03\x04 definitely not a model")
    clip = require_data("face-media") / "single_face.jpg"
    status = main(["predict", "--model", str(bad), str(clip), "--out", str(tmp_path / "p.csv")])
    assert status == 1
    assert "model refused" in capsys.readouterr().err
    assert not (tmp_path / "p.csv").exists()


def test_cli_info_describes_the_model(model_file, capsys):
    assert main(["predict", "--model", str(model_file), "--info"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["class_names"] == ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]
    assert info["input"]["input_dim"] == 2304
    assert info["dataset"] == "ckplus48"


def test_predict_paths_annotates_images_and_summarises_without_keeping_rows(
    model_file, require_data, tmp_path
):
    from pathnet_fer.faces.video import read_image
    from pathnet_fer.predict import Predictor

    media = require_data("face-media")
    inputs = [str(media / "multi_face.jpg"), str(media / "single_face.jpg")]
    predictor = Predictor.from_file(model_file)
    kept = predictor.predict_paths(inputs, annotate=tmp_path / "annotated")
    # The same name in another folder gets its own annotated file, never overwrites.
    (tmp_path / "copy").mkdir()
    shutil.copy(media / "single_face.jpg", tmp_path / "copy" / "single_face.jpg")
    twice = predictor.predict_paths(
        [inputs[1], str(tmp_path / "copy")], annotate=tmp_path / "twice", keep_predictions=False
    )
    assert len(twice.files) == 2
    assert sorted(p.name for p in (tmp_path / "twice").iterdir()) == [
        "single_face_annotated.png",
        "single_face_annotated_2.png",
    ]
    lean = predictor.predict_paths(inputs, keep_predictions=False)
    assert lean.predictions.empty and kept.problems == lean.problems == []
    pd.testing.assert_frame_equal(kept.summary, lean.summary)
    assert kept.summary["frames"].tolist() == [1, 1]
    assert kept.summary["fresh"].iloc[0] >= 2  # several faces, one row each
    for name in ("multi_face", "single_face"):
        drawn = read_image(tmp_path / "annotated" / f"{name}_annotated.png")
        assert drawn.shape == read_image(media / f"{name}.jpg").shape
