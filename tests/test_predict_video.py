"""The streaming predictor on real clips: one row per frame, NaN rows, annotation."""

from __future__ import annotations

import math

import av
import numpy as np
import pandas as pd
import pytest

from pathnet_fer.faces.video import count_frames, read_image
from pathnet_fer.predict import Predictor, load_model
from pathnet_fer.predict.columns import BASE_COLUMNS, columns, describe, read_predictions
from pathnet_fer.predict.summary import summarise
from predict_support import trained_model


@pytest.fixture(scope="module")
def predictor(require_data, tmp_path_factory):
    require_data("ckplus48")
    return Predictor(load_model(trained_model(tmp_path_factory.mktemp("predict-model")).path))


@pytest.fixture(scope="module")
def predicted(predictor):
    """Prediction tables by clip path, computed once per module (detection is the cost)."""
    cache: dict[str, pd.DataFrame] = {}

    def get(path) -> pd.DataFrame:
        if str(path) not in cache:
            cache[str(path)] = predictor.predict_video(path)
        return cache[str(path)]

    return get


@pytest.fixture(scope="module")
def media(require_data):
    return require_data("face-media")


@pytest.fixture(scope="module")
def crema(require_data):
    return require_data("crema-d-sample") / "VideoFlash"


def _check_schema(table: pd.DataFrame, class_names: list[str]) -> None:
    assert list(table.columns) == columns(class_names)
    documented = dict(
        zip(describe(class_names)["column"], describe(class_names)["dtype"], strict=True)
    )
    for name, dtype in documented.items():
        assert str(table[name].dtype) == dtype, name
    assert list(table["detection"].cat.categories) == ["fresh", "fallback", "none"]
    assert list(table["emotion"].cat.categories) == class_names


def _check_rows(table: pd.DataFrame, class_names: list[str]) -> None:
    """Invariants of every prediction table: NaN exactly where there is no face."""
    pcols = [f"p_{c}" for c in class_names]
    no_face = table["detection"].eq("none").to_numpy()
    proba = table[pcols].to_numpy()
    assert np.isnan(proba[no_face]).all()
    assert not np.isnan(proba[~no_face]).any()
    np.testing.assert_allclose(proba[~no_face].sum(axis=1), 1.0, atol=1e-9)
    assert table.loc[no_face, ["face_x", "face_y", "face_w", "face_h"]].isna().all().all()
    assert table.loc[~no_face, ["face_w", "face_h"]].gt(0).all().all()
    assert table["emotion"].isna().to_numpy().tolist() == no_face.tolist()
    argmax = np.asarray(class_names)[proba[~no_face].argmax(axis=1)]
    assert (table.loc[~no_face, "emotion"].astype(str).to_numpy() == argmax).all()


def test_crema_clips_one_row_per_decoded_frame(predictor, predicted, crema):
    names = predictor.class_names
    for clip in (crema / "1001_DFA_ANG_XX.flv", crema / "1001_DFA_HAP_XX.flv"):
        table = predicted(clip)
        n = count_frames(clip)
        assert len(table) == n
        assert table["frame"].tolist() == list(range(n))
        assert table["timestamp"].is_monotonic_increasing and table["timestamp"].iloc[-1] > 1.0
        assert (table["file"] == str(clip.resolve())).all()
        _check_schema(table, names)
        _check_rows(table, names)
        assert table["detection"].eq("fresh").mean() > 0.9  # one frontal face throughout


def test_video_without_face_keeps_every_frame_as_nan(predictor, predicted, media):
    clip = media / "no_face.mp4"
    table = predicted(clip)
    assert len(table) == count_frames(clip)
    assert table["detection"].eq("none").all()
    assert table[[c for c in table if c.startswith("p_")]].isna().all().all()
    _check_schema(table, predictor.class_names)
    summary = summarise(table)
    assert summary.loc[0, "frames_with_face"] == 0
    assert pd.isna(summary.loc[0, "emotion_majority"])


def test_face_that_leaves_gives_nan_rows_after_bounded_fallback(predictor, media):
    clip = media / "face_noface.mov"
    table = predictor.predict_video(clip, every=3)
    assert len(table) == math.ceil(count_frames(clip) / 3)
    _check_rows(table, predictor.class_names)
    kinds = table["detection"].astype(str)
    assert kinds.eq("fresh").sum() > 20 and kinds.eq("none").sum() > 20
    # The fallback never outlives max_fallback_s after the last fresh detection.
    last_fresh = table["timestamp"].where(kinds.eq("fresh")).ffill()
    fallback = kinds.eq("fallback")
    assert (table["timestamp"][fallback] - last_fresh[fallback]).max() <= predictor.max_fallback_s
    # The paper's unbounded rule (max_fallback_s=inf) reuses the last face to the end.
    paper = Predictor(predictor.model, max_fallback_s=math.inf).predict_video(clip, every=3)
    first_face = int(np.argmax(paper["detection"].ne("none").to_numpy()))
    assert paper["detection"].iloc[first_face:].ne("none").all()


def test_every_kth_frame_batch_size_and_threads_do_not_change_results(predictor, predicted, crema):
    clip = crema / "1001_DFA_ANG_XX.flv"
    full = predicted(clip)
    other = Predictor(predictor.model, batch_size=7, workers=1).predict_video(clip)
    pd.testing.assert_frame_equal(full, other)
    every3 = predictor.predict_video(clip, every=3)
    assert every3["frame"].tolist() == list(range(0, len(full), 3))
    np.testing.assert_allclose(every3["timestamp"], full["timestamp"].iloc[::3])


def test_annotated_video_decodes_with_every_frame(predictor, predicted, crema, tmp_path):
    clip = crema / "1001_DFA_ANG_XX.flv"
    out = tmp_path / "annotated.mp4"
    table = predictor.predict_video(clip, annotate=out)
    pd.testing.assert_frame_equal(table, predicted(clip))  # same predictions as without
    with av.open(str(out)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264"
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert len(frames) == len(table) == count_frames(clip)
    # Boxes were drawn: the annotated frame differs from the source along the box edge.
    with av.open(str(clip)) as container:
        source = next(container.decode(video=0)).to_ndarray(format="rgb24")
    x, y, w = (int(table.loc[0, k]) for k in ("face_x", "face_y", "face_w"))
    edge = frames[0][y, x : x + w].astype(int) - source[y, x : x + w].astype(int)
    assert np.abs(edge).mean() > 40


def test_images_one_row_per_face_and_nan_without_face(predictor, media):
    several = predictor.predict_image(media / "multi_face.jpg")
    assert len(several) >= 2 and several["detection"].eq("fresh").all()
    _check_rows(several, predictor.class_names)
    areas = (several["face_w"] * several["face_h"]).to_numpy()
    assert (np.diff(areas) <= 0).all()  # largest first

    none = predictor.predict_image(media / "free-mountain-vector-01.jpg")
    assert len(none) == 1 and none["detection"].eq("none").all()
    _check_schema(none, predictor.class_names)

    path_rows = predictor.predict_image(media / "single_face.jpg")
    assert len(path_rows) == 1
    # The same pixels as an array give the same rows; an RGB array the same face.
    grey = predictor.predict_image(read_image(media / "single_face.jpg", "gray"), name="x")
    pd.testing.assert_frame_equal(grey.drop(columns="file"), path_rows.drop(columns="file"))
    rgb = predictor.predict_image(read_image(media / "single_face.jpg"))
    assert rgb.loc[0, "file"] == "<array>" and len(rgb) == 1
    box = ["face_x", "face_y", "face_w", "face_h"]
    assert (rgb[box].astype(float) - path_rows[box].astype(float)).abs().max().max() <= 4


def test_csv_round_trip_keeps_dtypes_and_empty_boxes(predicted, media, crema, tmp_path):
    table = predicted(media / "no_face.mp4").head(3)
    table = pd.concat([table, predicted(crema / "1001_DFA_ANG_XX.flv").head(3)])
    table = table.reset_index(drop=True)
    path = tmp_path / "p.csv"
    table.to_csv(path, index=False)
    assert ",,,," in path.read_text()  # empty box cells, not 0 or "nan"
    back = read_predictions(str(path))
    assert set(BASE_COLUMNS) <= set(back.columns)
    pd.testing.assert_frame_equal(back, table, check_exact=False, atol=1e-12)
