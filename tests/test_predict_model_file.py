"""Model files: a real trained PathNet path round-trips exactly; bad files are refused."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch

from pathnet_fer import __version__
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.predict import ModelFileError, Predictor, load_model, save_path_model
from pathnet_fer.predict.model_file import FORMAT_VERSION
from predict_support import trained_model


@pytest.fixture(scope="module")
def trained(require_data, tmp_path_factory):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("predict-model"))


def _crops(x: np.ndarray) -> np.ndarray:
    return np.rint(x * 255).astype(np.uint8).reshape(len(x), 48, 48)


def test_loaded_model_predicts_like_the_trained_net(trained):
    loaded = load_model(trained.path)
    from_file = loaded.predict_proba(_crops(trained.x_test))
    from_net = trained.net.predict_proba(trained.x_test, trained.task, run=0).numpy()
    assert from_file.shape == (len(trained.x_test), 6)
    np.testing.assert_allclose(from_file, from_net, atol=1e-5)
    np.testing.assert_allclose(from_file.sum(axis=1), 1.0, atol=1e-9)
    # A trained model is not a constant: it separates the held-out classes somewhat.
    assert len(np.unique(from_file.argmax(axis=1))) >= 2


def test_file_describes_itself(trained):
    loaded = load_model(trained.path)
    assert loaded.class_names == trained.class_names
    assert loaded.face_settings.size == 48 and loaded.face_settings.colour == "grey"
    assert loaded.input.input_dim == 2304
    assert loaded.package_version == __version__
    assert loaded.format_version == FORMAT_VERSION
    assert loaded.dataset == "ckplus48"
    assert loaded.metadata["generations"] > 0
    best = trained.task.best_paths[0].tolist()
    assert loaded.config["genotype"] == best


def test_resaved_model_gives_identical_predictions(trained, shared_data, tmp_path):
    loaded = load_model(trained.path)
    copy = save_path_model(
        tmp_path / "copy.pt",
        loaded.model,
        class_names=loaded.class_names,
        face_settings=loaded.face_settings,
        dataset=loaded.dataset,
        metadata=loaded.metadata,
    )
    clip = shared_data / "crema-d-sample" / "VideoFlash" / "1001_DFA_HAP_XX.flv"
    first = Predictor(loaded).predict_video(clip, every=4)
    second = Predictor.from_file(copy).predict_video(clip, every=4)
    assert first["detection"].eq("fresh").all()
    assert first.equals(second)


def _rewrite(src, dst, change):
    payload = torch.load(src, weights_only=True)
    change(payload)
    torch.save(payload, dst)
    return dst


def test_incompatible_format_version_is_refused(trained, tmp_path):
    newer = _rewrite(trained.path, tmp_path / "v99.pt", lambda p: p.update(format_version=99))
    with pytest.raises(ModelFileError, match=r"format v99.*upgrade pathnet-fer"):
        load_model(newer)


def test_corrupt_and_foreign_files_are_refused(trained, tmp_path):
    data = trained.path.read_bytes()
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match="corrupt"):
        load_model(truncated)

    text = tmp_path / "notes.pt"
    text.write_text("not a model")
    with pytest.raises(ModelFileError, match="not a readable pathnet-fer model file"):
        load_model(text)

    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelFileError, match="not a pathnet-fer model file"):
        load_model(foreign)

    def flip(payload):
        name = next(iter(payload["state_dict"]))
        payload["state_dict"][name] = payload["state_dict"][name] + 1.0

    tampered = _rewrite(trained.path, tmp_path / "tampered.pt", flip)
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tampered)

    with pytest.raises(ModelFileError, match="does not exist"):
        load_model(tmp_path / "missing.pt")


def test_input_size_or_colour_mismatch_is_refused(trained, tmp_path):
    def bigger(payload):
        payload["face_settings"]["size"] = 64

    inconsistent = _rewrite(trained.path, tmp_path / "size64.pt", bigger)
    with pytest.raises(ModelFileError, match=r"expects 48x48 grey crops \(2304 inputs\)"):
        load_model(inconsistent)

    loaded = load_model(trained.path)
    for wrong in (FaceSettings(size=64), FaceSettings(colour="rgb")):
        with pytest.raises(ModelFileError, match="expects 48x48 grey"):
            Predictor(loaded, face_settings=wrong)
    # Settings that do not change the crop's shape (margin) are fine.
    Predictor(loaded, face_settings=dataclasses.replace(loaded.face_settings, margin=0.1))


def test_save_refuses_a_model_that_does_not_fit_its_description(trained, tmp_path):
    loaded = load_model(trained.path)
    with pytest.raises(ModelFileError, match="outputs"):
        save_path_model(
            tmp_path / "bad.pt",
            loaded.model,
            class_names=[*loaded.class_names, "neutral"],
            face_settings=loaded.face_settings,
            dataset="ckplus48",
        )
    with pytest.raises(ModelFileError, match="does not take"):
        save_path_model(
            tmp_path / "bad.pt",
            loaded.model,
            class_names=loaded.class_names,
            face_settings=FaceSettings(size=32),
            dataset="ckplus48",
        )
    assert not (tmp_path / "bad.pt").exists()
    shutil.rmtree(tmp_path, ignore_errors=True)
