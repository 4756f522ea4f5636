"""Model files: a real trained PathNet path round-trips exactly; bad files are refused."""

from __future__ import annotations

import dataclasses
import re
import shutil

import numpy as np
import pytest
import torch

from pathnet_fer import __version__
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.formats.model_file import FORMAT_VERSION
from pathnet_fer.predict import ModelFileError, Predictor, load_model, save_path_model
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
    assert loaded.format_version == 3 < FORMAT_VERSION  # a single path: v3, old readers read it
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


def _calibrated(trained, tmp_path, temperature=2.0):
    """A copy of the trained model file carrying a valid calibration (as a final model)."""
    from pathnet_fer.formats.model_calibration import set_calibration

    path = tmp_path / "calibrated.pt"
    shutil.copyfile(trained.path, path)
    set_calibration(path, {"temperature": temperature, "method": "test"})
    return path


def _with_temperature(src, dst, value):
    def change(payload):
        payload["metadata"]["calibration"]["temperature"] = value

    return _rewrite(src, dst, change)


BAD_TEMPERATURES = [
    (float("nan"), "nan"),
    (0.0, "0.0"),
    (-1.0, "-1.0"),
    (float("inf"), "inf"),
    (1e30, "1e+30"),
    ("abc", "'abc'"),
    ([2.0], "a list"),
]


@pytest.mark.parametrize("value,shown", BAD_TEMPERATURES, ids=[s for _, s in BAD_TEMPERATURES])
def test_an_unusable_calibration_temperature_is_refused_on_load(trained, tmp_path, value, shown):
    """nan/0 gave NaN probabilities, -1 inverted them, inf/1e30 made them uniform: all
    silently, exit 0. Now one line naming the file and the value."""
    edited = _with_temperature(_calibrated(trained, tmp_path), tmp_path / "edited.pt", value)
    with pytest.raises(ModelFileError) as refused:
        load_model(edited)
    message = str(refused.value)
    assert "\n" not in message and str(edited) in message
    assert f"calibration temperature {shown} " in message
    assert "could not convert" not in message


def test_predict_refuses_a_model_with_a_bad_temperature_in_one_line(
    trained, tmp_path, require_data, capsys
):
    from pathnet_fer.cli import main

    edited = _with_temperature(_calibrated(trained, tmp_path), tmp_path / "edited.pt", -1.0)
    image = require_data("face-media") / "single_face.jpg"
    out = tmp_path / "p.csv"
    assert main(["predict", "--model", str(edited), str(image), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: model refused:") and len(err.splitlines()) == 1
    assert "calibration temperature -1.0" in err and str(edited) in err
    assert not out.exists()


@pytest.mark.parametrize("value,shown", BAD_TEMPERATURES, ids=[s for _, s in BAD_TEMPERATURES])
def test_an_unusable_calibration_temperature_is_refused_when_written(
    trained, tmp_path, value, shown
):
    from pathnet_fer.formats.model_calibration import set_calibration

    path = tmp_path / "model.pt"
    shutil.copyfile(trained.path, path)
    before = path.read_bytes()
    with pytest.raises(ModelFileError, match=rf"calibration temperature {re.escape(shown)} "):
        set_calibration(path, {"temperature": value})
    assert path.read_bytes() == before
    loaded = load_model(trained.path)
    with pytest.raises(ModelFileError, match=rf"calibration temperature {re.escape(shown)} "):
        save_path_model(
            tmp_path / "new.pt",
            loaded.model,
            class_names=loaded.class_names,
            face_settings=loaded.face_settings,
            dataset=loaded.dataset,
            metadata={"calibration": {"temperature": value}},
        )
    assert not (tmp_path / "new.pt").exists()


def _edit_calibration(payload):
    payload["metadata"]["calibration"]["temperature"] = 3.0  # valid, but not what was fit


def _edit_classes(payload):
    payload["class_names"] = payload["class_names"][::-1]  # every emotion renamed


def _edit_margin(payload):
    payload["face_settings"]["margin"] = 0.5  # other crops reach the network


def _edit_combine(payload):
    config = payload["model_config"]  # module outputs averaged instead of summed
    config["combine"] = "mean" if config["combine"] == "sum" else "sum"


@pytest.mark.parametrize(
    "edit",
    [_edit_calibration, _edit_classes, _edit_margin, _edit_combine],
    ids=lambda f: f.__name__,
)
def test_integrity_check_covers_everything_that_changes_predictions(trained, tmp_path, edit):
    """The weights' checksum alone let a changed temperature, class order or crop setting
    through (a different answer from unchanged weights)."""
    edited = _rewrite(_calibrated(trained, tmp_path), tmp_path / "edited.pt", edit)
    with pytest.raises(ModelFileError, match="do not match their checksum") as refused:
        load_model(edited)
    assert str(edited) in str(refused.value) and "\n" not in str(refused.value)


def test_descriptive_metadata_is_not_covered_and_old_files_still_load(trained, tmp_path):
    from pathnet_fer.formats.model_file import FORMAT_VERSION

    calibrated = _calibrated(trained, tmp_path)
    # Notes that do not change a prediction (scores, run dir) may be edited.
    noted = _rewrite(calibrated, tmp_path / "noted.pt", lambda p: p["metadata"].update(note="x"))
    assert load_model(noted).metadata["note"] == "x"

    # A file of format v2 (before the content checksum) still loads, its weights checked
    # and its temperature still refused when unusable ...
    def as_v2(payload):
        payload["format_version"] = 2
        del payload["content_sha256"]

    old = _rewrite(calibrated, tmp_path / "v2.pt", as_v2)
    assert load_model(old).format_version == 2 < FORMAT_VERSION
    assert load_model(old).temperature == 2.0
    bad = _with_temperature(old, tmp_path / "v2-bad.pt", float("inf"))
    with pytest.raises(ModelFileError, match="calibration temperature inf "):
        load_model(bad)
    # ... but a current file without its content checksum is incomplete, not "old".
    stripped = _rewrite(calibrated, tmp_path / "stripped.pt", lambda p: p.pop("content_sha256"))
    with pytest.raises(ModelFileError, match="missing content_sha256"):
        load_model(stripped)
