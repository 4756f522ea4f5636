"""ImageNet weights: offline packages reproduce ImageNet predictions; missing weights fail clearly."""

from __future__ import annotations

import pytest
import torch

from pathnet_fer.baselines.cnn_zoo import CNNClassifier, build_cnn, build_imagenet_model, get_spec
from pathnet_fer.baselines.weights import (
    WeightsNotFoundError,
    offline_package_file,
    resolve_weights,
)

ESPRESSO = 967


@pytest.fixture(scope="module")
def coffee() -> torch.Tensor:
    """skimage's real photo of a cup of espresso, uint8 (1, h, w, 3)."""
    data = pytest.importorskip("skimage.data")
    return torch.from_numpy(data.coffee()).unsqueeze(0)


@pytest.fixture(scope="module")
def categories() -> list[str]:
    from torchvision.models import MobileNet_V2_Weights

    return MobileNet_V2_Weights.IMAGENET1K_V1.meta["categories"]  # bundled, no download


def _top5(name: str, model: torch.nn.Module, image: torch.Tensor) -> torch.Tensor:
    spec = get_spec(name)
    prep = CNNClassifier(name, torch.nn.Identity(), 1, 1, spec.input_size, spec.mean, spec.std)
    model.eval()
    with torch.inference_mode():
        return model(prep.prepare(image)).softmax(1)[0].topk(5).indices


def _require_package(model: str) -> None:
    if offline_package_file(model) is None:
        pytest.skip(f"offline weights package for {model} not installed (make setup installs it)")


def test_mobilenet_v2_package_predicts_espresso(coffee, categories):
    _require_package("mobilenet_v2")
    assert categories[ESPRESSO] == "espresso"
    model, choice = build_imagenet_model("mobilenet_v2", "auto")
    assert choice.source == "package" and choice.pretrained
    top5 = _top5("mobilenet_v2", model, coffee)
    assert int(top5[0]) == ESPRESSO, [categories[i] for i in top5]


def test_local_weights_file_loads_and_matches_package(coffee, tmp_path):
    """``--weights PATH``: a wrapped state_dict file gives the same predictions."""
    _require_package("mobilenet_v2")
    state = torch.load(offline_package_file("mobilenet_v2"), weights_only=True)
    path = tmp_path / "mine.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, path)
    from_file, choice = build_imagenet_model("mobilenet_v2", str(path))
    assert choice.source == "file" and choice.path == path.resolve()
    assert int(_top5("mobilenet_v2", from_file, coffee)[0]) == ESPRESSO


def test_efficientnet_lite0_package_predicts_coffee(coffee, categories):
    _require_package("efficientnet_lite0")
    model, choice = build_imagenet_model("efficientnet_lite0", "auto")
    assert choice.source == "package"
    names = {categories[i] for i in _top5("efficientnet_lite0", model, coffee)}
    assert {"espresso", "cup"} <= names, names


def test_missing_weights_file_names_the_options(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(WeightsNotFoundError) as err:
        build_cnn("resnet18", weights=str(missing))
    text = str(err.value)
    assert str(missing) in text and "torchvision" in text and "=none" in text


def test_auto_never_falls_back_to_random_init(monkeypatch, tmp_path):
    """No package, nothing cached: an error, not an untrained net labelled pretrained."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="resnet50=torchvision"):
        resolve_weights("resnet50", "auto")
    assert resolve_weights("resnet50", "none").pretrained is False


def test_wrong_or_corrupt_weights_file_is_refused(tmp_path):
    _require_package("mobilenet_v2")
    with pytest.raises(WeightsNotFoundError, match="do not fit 'resnet18'"):
        build_cnn("resnet18", weights=str(offline_package_file("mobilenet_v2")))
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(offline_package_file("mobilenet_v2").read_bytes()[:4096])
    with pytest.raises(WeightsNotFoundError, match="cannot read"):
        build_cnn("mobilenet_v2", weights=str(corrupt))


def test_unknown_model_lists_known_names():
    with pytest.raises(ValueError, match="resnet18"):
        build_cnn("alexnet", weights="none")
