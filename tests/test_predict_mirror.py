"""Mirror averaging (``LoadedModel.mirror``, ``--mirror on|off``): each face's logits are
averaged with its mirror image's; the file's own setting is checked and covered by its
checksum; the command line and the Predictor can turn it on or off."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pathnet_fer.cli import main
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.formats.loaded_model import ModelFileError
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path
from pathnet_fer.pretrained.figures import heldout_sample
from predict_support import first_head, saved_with_inference


@pytest.fixture(scope="module")
def crops(require_data):
    require_data("fer2013")
    return heldout_sample(load_config("pretrained"), n=96, seed=5).images


@pytest.fixture(scope="module")
def plain():
    return first_head(load_model(pretrained_path())).mirrored(False)


def test_mirror_averages_the_two_views_and_is_blind_to_left_right(plain, crops):
    flipped = np.ascontiguousarray(crops[:, :, ::-1])
    off, off_flipped = plain.logits(crops), plain.logits(flipped)
    # the network alone tells a face from its mirror image: the test below can fail
    assert (off - off_flipped).abs().max() > 1e-2
    on = plain.mirrored(True)
    torch.testing.assert_close(on.logits(crops), (off + off_flipped) / 2)
    # 96 crops: two CPU passes (64 rows each), so the passes' mirror images must line up
    np.testing.assert_allclose(on.predict_proba(crops), on.predict_proba(flipped), atol=1e-9)


def _saved(plain, tmp_path, inference):
    return saved_with_inference(plain, tmp_path / "model.pt", inference)


def test_file_setting_is_read_checked_and_covered_by_the_checksum(plain, tmp_path):
    assert load_model(_saved(plain, tmp_path, {"mirror": True})).mirror is True
    assert load_model(_saved(plain, tmp_path, {"mirror": False})).mirror is False
    for bad in ({"mirror": "yes"}, {"mirror": 1}, "on"):
        path = _saved(plain, tmp_path, bad)
        with pytest.raises(ModelFileError, match="inference setting mirror") as refused:
            load_model(path)
        assert str(path) in str(refused.value) and "\n" not in str(refused.value)
    # an edited setting changes every answer: the content checksum refuses it
    path = _saved(plain, tmp_path, {"mirror": True})
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["inference"]["mirror"] = False
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match="do not match their checksum"):
        load_model(path)


def test_evaluate_and_predictor_turn_it_on_and_off(plain, require_data, tmp_path, capsys):
    from pathnet_fer.predict import Predictor

    require_data("jaffe")
    path = _saved(plain, tmp_path, {"mirror": True})
    figures = {}
    for choice in ("on", "off"):
        out = tmp_path / choice
        args = ["evaluate", str(path), "--dataset", "jaffe", "--out", str(out)]
        assert main([*args, "--mirror", choice, "--quiet"]) == 0
        figures[choice] = pd.read_csv(out / "frames.csv")
        said = (out / "summary.md").read_text()
        assert ("averaged with its mirror image" in said) == (choice == "on")
    capsys.readouterr()
    on, off = figures["on"], figures["off"]
    assert len(on) == len(off) == 183
    assert not np.allclose(on["p_max"], off["p_max"])
    assert Predictor.from_file(path, detect=False).model.mirror is True
    assert Predictor.from_file(path, detect=False, mirror=False).model.mirror is False
