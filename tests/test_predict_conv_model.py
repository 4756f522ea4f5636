"""Model files for conv paths: round trip, the predictor on a real clip, old linear (v1)
files still load, inconsistent files are refused clearly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pathnet_fer.formats.loaded_model import CPU_ROWS_PER_PASS
from pathnet_fer.formats.model_file import CONV_MODEL_KIND, FORMAT_VERSION, MODEL_KIND
from pathnet_fer.predict import ModelFileError, Predictor, load_model
from predict_support import trained_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def conv(require_data, tmp_path_factory):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("predict-conv"), module="conv")


@pytest.fixture(scope="module")
def linear(require_data, tmp_path_factory):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("predict-model"))


def _crops(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8).reshape(len(x), 48, 48)


def test_conv_model_file_predicts_like_the_trained_net(conv):
    loaded = load_model(conv.path)
    assert loaded.format_version == 3 < FORMAT_VERSION  # a single path: v3, old readers read it
    assert loaded.config["format"] == "pathnet-fer-conv-path-model"
    assert loaded.config["input_norm"] == "image" and loaded.config["channels"] == [4, 8, 8]
    # several of predict_proba's CPU passes, so a pass lost or out of order fails here
    assert len(conv.x_test) > 2 * CPU_ROWS_PER_PASS
    from_file = loaded.predict_proba(_crops(conv.x_test))
    from_net = conv.net.predict_proba(conv.x_test, conv.task, run=0).numpy()
    np.testing.assert_allclose(from_file, from_net, atol=1e-5)


def test_predictor_runs_a_conv_model_on_a_real_clip(conv, require_data):
    clip = require_data("crema-d-sample") / "VideoFlash" / "1001_DFA_ANG_XX.flv"
    table = Predictor(load_model(conv.path)).predict_video(clip, every=10)
    assert len(table) > 3
    probs = table[[c for c in table.columns if c.startswith("p_")]].to_numpy()
    faces = ~np.isnan(probs).any(axis=1)
    assert faces.sum() > 0
    np.testing.assert_allclose(probs[faces].sum(axis=1), 1.0, atol=1e-6)


def _rewrite(src, dst, **changes):
    payload = torch.load(src, map_location="cpu", weights_only=True)
    payload.update(changes)
    torch.save(payload, dst)
    return dst


def test_version_1_linear_files_still_load(linear, tmp_path):
    old = _rewrite(linear.path, tmp_path / "v1.pt", format_version=1)
    loaded = load_model(old)
    assert loaded.format_version == 1
    np.testing.assert_allclose(
        loaded.predict_proba(_crops(linear.x_test[:5])),
        load_model(linear.path).predict_proba(_crops(linear.x_test[:5])),
    )


def test_inconsistent_kinds_are_refused(conv, linear, tmp_path):
    with pytest.raises(ModelFileError, match="format v1 files hold 'pathnet-path' models only"):
        load_model(_rewrite(conv.path, tmp_path / "a.pt", format_version=1))
    with pytest.raises(ModelFileError, match="model config is a 'pathnet-path' one"):
        load_model(_rewrite(linear.path, tmp_path / "b.pt", model_kind=CONV_MODEL_KIND))
    with pytest.raises(ModelFileError, match="model config is a 'pathnet-conv-path' one"):
        load_model(_rewrite(conv.path, tmp_path / "c.pt", model_kind=MODEL_KIND))
