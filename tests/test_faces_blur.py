"""FaceSettings.blur: a Gaussian blur of every finished crop, off by default (docs/faces.md,
"The `blur` setting"; an optional setting with no measured benefit on the current data).

On real images: the blur softens crops (FER-2013's shared training split, once blurred,
is now as sharp as its test split: the test checks that too), 0 leaves the crops (and the cache key) exactly as they were
before the setting existed, any other value gets its own cache, and a model file's face
settings carry the blur to the predictor.
"""

from __future__ import annotations

import dataclasses
import math

import cv2
import numpy as np
import pytest

from pathnet_fer.faces.cache import dataset_cache_dir
from pathnet_fer.faces.crop import blur_crop, crop_face, square_region
from pathnet_fer.faces.detector import FaceDetector
from pathnet_fer.faces.extract import extract_faces
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.video import read_image

# The sigma that matched the blurred copy of FER-2013 train that the project once had
# (benchmarks/fer2013_blur_gap.py on that copy); the shared split is sharp now.
OLD_MATCHED_SIGMA = 3.06
# FaceSettings().resolved(pre_cropped=True).key() before ``blur`` existed: the folder of
# every FER-2013 / CK+48 crop cache built so far (must stay valid with blur=0).
DEFAULT_PRE_CROPPED_KEY = "d123f2ce4a12"


def sharpness(crop: np.ndarray) -> float:
    """Mean |Laplacian|, as in the benchmark."""
    return float(np.abs(cv2.Laplacian(crop.astype(np.float32), cv2.CV_32F)).mean())


def _files(root, pattern: str, n: int) -> list[str]:
    files = sorted(str(p) for p in root.glob(pattern))
    if len(files) < n:
        pytest.skip(f"fewer than {n} files {pattern} under {root}")
    return files[:: max(1, len(files) // n)][:n]


@pytest.fixture(scope="module")
def sharp_images(require_data):
    """Sharp 48x48 real images: CK+48 and FER-2013 test (no detection)."""
    ck = _files(require_data("ckplus48"), "happy/*.png", 10)
    fer = _files(require_data("fer2013") / "test", "*/*.jpg", 20)
    return ck + fer


def _crops(paths: list[str], settings: FaceSettings) -> np.ndarray:
    settings = settings.resolved(pre_cropped=True)
    return np.concatenate([extract_faces(p, settings).images for p in paths])


def test_blur_softens_real_crops_and_fer_training_is_now_sharp(sharp_images, require_data):
    plain = _crops(sharp_images, FaceSettings())
    light = _crops(sharp_images, FaceSettings(blur=1.0))
    heavy = _crops(sharp_images, FaceSettings(blur=OLD_MATCHED_SIGMA))
    assert plain.shape == light.shape == heavy.shape == (len(sharp_images), 48, 48)
    assert heavy.dtype == np.uint8
    s_plain, s_light, s_heavy = (
        np.median([sharpness(c) for c in crops]) for crops in (plain, light, heavy)
    )
    assert s_plain > 15  # sharp faces (about 29 on the whole of FER test and CK+48)
    assert s_heavy < s_light < s_plain / 2
    assert s_heavy < 4  # the sigma that once matched the blurred copy of FER-2013 train
    # The shared FER-2013 training split is now the original sharp images (median 27.7
    # on 30 crops): as sharp as its test split and CK+48, so no blur matches it any more.
    train = _files(require_data("fer2013") / "train", "*/*.jpg", 30)
    s_train = np.median([sharpness(c) for c in _crops(train, FaceSettings())])
    assert s_train > 15, f"FER-2013 train median sharpness {s_train:.1f}: blurred again?"
    assert 0.5 < s_train / s_plain < 2.0
    # a blur, not a darkening: each crop keeps its mean brightness
    np.testing.assert_allclose(heavy.mean(axis=(1, 2)), plain.mean(axis=(1, 2)), atol=3)


def test_blur_applies_after_cropping_a_detected_face(require_data):
    photo_path = require_data("jaffe") / "KA.HA1.29.tiff"
    if not photo_path.exists():
        pytest.skip("KA.HA1.29.tiff not in the JAFFE copy")
    on = extract_faces(str(photo_path), FaceSettings(blur=2.0).resolved(pre_cropped=False))
    off = extract_faces(str(photo_path), FaceSettings().resolved(pre_cropped=False))
    assert on.status == off.status == "ok"
    np.testing.assert_array_equal(on.boxes, off.boxes)  # detection is unaffected
    # the same face, blurred at the crop's own resolution (48x48), not in the photo
    np.testing.assert_array_equal(on.images[0], blur_crop(off.images[0], 2.0))
    assert sharpness(on.images[0]) < sharpness(off.images[0]) / 2


def test_blur_zero_leaves_crops_bit_identical(sharp_images, require_data):
    # pre-cropped datasets: the crop is the decoded file itself
    crops = _crops(sharp_images, FaceSettings(blur=0.0))
    for path, crop in zip(sharp_images, crops, strict=True):
        np.testing.assert_array_equal(crop, read_image(path, "gray"))
    np.testing.assert_array_equal(crops, _crops(sharp_images, FaceSettings()))
    # a detected face: the square around the box, area-resized, as before the setting
    photo_path = require_data("jaffe") / "KA.HA1.29.tiff"
    if not photo_path.exists():
        pytest.skip("KA.HA1.29.tiff not in the JAFFE copy")
    photo = read_image(photo_path, "gray")
    box = tuple(int(v) for v in FaceDetector(FaceSettings()).detect(photo)[0])
    x0, y0, x1, y1 = square_region(box, 0.0)
    assert x0 >= 0 and y0 >= 0 and x1 <= photo.shape[1] and y1 <= photo.shape[0]
    reference = cv2.resize(photo[y0:y1, x0:x1], (48, 48), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(crop_face(photo, box, FaceSettings(blur=0.0)), reference)
    crop = np.ascontiguousarray(reference)
    assert blur_crop(crop, 0.0) is crop


def test_blur_is_part_of_the_cache_key_and_zero_keeps_the_old_one(tmp_path):
    default = FaceSettings().resolved(pre_cropped=True)
    assert default.key() == DEFAULT_PRE_CROPPED_KEY
    assert dataclasses.replace(default, blur=0.0).key() == DEFAULT_PRE_CROPPED_KEY
    keys = {dataclasses.replace(default, blur=b).key() for b in (0.0, 0.5, 1.0, 3.06)}
    assert len(keys) == 4
    assert FaceSettings(blur=2).key() == FaceSettings(blur=2.0).key()  # one value, one key
    assert dataset_cache_dir("ckplus48", default, tmp_path) != dataset_cache_dir(
        "ckplus48", dataclasses.replace(default, blur=1.0), tmp_path
    )


def test_preprocess_builds_a_separate_blurred_cache(require_data, tmp_path):
    from pathnet_fer.data.registry import get_adapter
    from pathnet_fer.faces.preprocess import preprocess_samples

    scan = get_adapter("ckplus48").scan(require_data("ckplus48"))
    samples = scan.samples.iloc[::40].reset_index(drop=True)
    assert len(samples) >= 10
    plain = FaceSettings().resolved(pre_cropped=True)
    blurred = FaceSettings(blur=OLD_MATCHED_SIGMA).resolved(pre_cropped=True)
    kwargs = dict(cache_dir=tmp_path, workers=1, progress=False)
    a = preprocess_samples(samples, "ckplus48", plain, **kwargs)
    b = preprocess_samples(samples, "ckplus48", blurred, **kwargs)
    assert a.report.cache_dir != b.report.cache_dir
    assert b.report.processed == len(samples)  # built anew, not read from the plain cache
    np.testing.assert_array_equal(
        b.images, np.stack([blur_crop(c, OLD_MATCHED_SIGMA) for c in a.images])
    )
    again = preprocess_samples(samples, "ckplus48", blurred, **kwargs)
    assert again.report.consolidated
    np.testing.assert_array_equal(again.images, b.images)


@pytest.mark.parametrize("bad", [-0.5, math.nan, math.inf, -math.inf, True, "2"])
def test_invalid_blur_is_refused(bad):
    with pytest.raises(ValueError, match="blur"):
        FaceSettings(blur=bad)


def test_config_carries_blur_per_dataset():
    from pathnet_fer.datasets.loading import face_settings_for
    from pathnet_fer.experiments.config import ConfigError
    from pathnet_fer.experiments.config_loading import build_config

    raw = {
        "name": "blur",
        "faces": {"blur": 1.5},
        "datasets": {
            "fer2013": {"adapter": "fer2013", "root": "fer2013"},
            "ckplus48": {"adapter": "ckplus48", "root": "ckplus48", "faces": {"blur": 3}},
        },
        "sets": [{"source": "fer2013", "destination": "ckplus48"}],
    }
    config = build_config(raw)
    assert face_settings_for(config, "fer2013").blur == 1.5
    assert face_settings_for(config, "ckplus48").blur == 3.0
    with pytest.raises((ConfigError, ValueError), match="blur"):
        build_config({**raw, "faces": {"blur": -1}})


@pytest.fixture(scope="module")
def trained(require_data, tmp_path_factory, one_torch_thread):
    from predict_support import trained_model

    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("blur-model"))


def test_model_file_carries_blur_to_prediction(trained, sharp_images, require_data, tmp_path):
    from pathnet_fer.predict import Predictor, load_model, save_path_model
    from pathnet_fer.predict.columns import BOX_COLUMNS, probability_column

    plain = load_model(trained.path)
    assert plain.face_settings.blur == 0.0
    path = save_path_model(
        tmp_path / "blurred.pt",
        plain.model,
        class_names=plain.class_names,
        face_settings=dataclasses.replace(plain.face_settings, blur=OLD_MATCHED_SIGMA),
        dataset=plain.dataset,
    )
    loaded = load_model(path)
    assert loaded.face_settings.blur == OLD_MATCHED_SIGMA
    predictor = Predictor(loaded, detect=False, workers=1)
    assert predictor.face_settings.blur == OLD_MATCHED_SIGMA
    image = sharp_images[0]
    crop = read_image(image, "gray")
    rows = predictor.predict_image(image)
    columns = [probability_column(c) for c in loaded.class_names]
    got = rows[columns].to_numpy(dtype=float)[0]
    want = loaded.predict_proba(blur_crop(crop, OLD_MATCHED_SIGMA)[None])[0]
    unblurred = loaded.predict_proba(crop[None])[0]
    np.testing.assert_allclose(got, want, atol=1e-6)
    assert np.abs(want - unblurred).max() > 1e-4  # the blur does reach the network
    # and with detection (a still photo): the detected face is blurred the same way
    photo_path = require_data("jaffe") / "KA.HA1.29.tiff"
    if photo_path.exists():
        detecting = Predictor(loaded, detect=True, workers=1)
        rows = detecting.predict_image(photo_path)
        photo = read_image(photo_path, "gray")
        box = tuple(int(v) for v in rows[list(BOX_COLUMNS)].to_numpy()[0])
        face = crop_face(photo, box, FaceSettings())
        expected = loaded.predict_proba(blur_crop(face, OLD_MATCHED_SIGMA)[None])[0]
        np.testing.assert_allclose(rows[columns].to_numpy(dtype=float)[0], expected, atol=1e-6)
