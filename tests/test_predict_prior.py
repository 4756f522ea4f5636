"""The class prior a model assumes (formats/class_prior.py; ``--prior train|uniform``):
``uniform`` divides the training faces' class frequencies, recorded in the file, out of
the calibrated probabilities (logit adjustment). Checked on the shipped model, on real
faces: exactly that arithmetic; it pays on balanced faces of people the model never saw
(CK+48) and costs on faces drawn like its training ones (FER-2013 test); the file's
setting is checked and covered by its checksum; the commands take it and refuse a file
that records no prior."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from pathnet_fer.cli import main
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.formats.class_prior import PriorError
from pathnet_fer.formats.loaded_model import ModelFileError
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pretrained import pretrained_path
from pathnet_fer.pretrained.figures import heldout_sample, sample_accuracy
from predict_support import first_head, saved_with_inference


@pytest.fixture(scope="module")
def shipped():
    return first_head(load_model(pretrained_path()))


@pytest.fixture(scope="module")
def crops(require_data):
    require_data("fer2013")
    return heldout_sample(load_config("pretrained"), n=96, seed=5).images


def test_shipped_model_records_its_training_prior_and_assumes_a_uniform_one(shipped):
    assert shipped.prior == "uniform"
    prior = dict(zip(shipped.class_names, shipped.class_prior, strict=True))
    assert sum(prior.values()) == pytest.approx(1.0)
    # FER-2013's six-class training split: 30 % happy, under 2 % disgusted
    assert max(prior, key=prior.get) == "happiness" and prior["disgust"] < 0.02


def test_uniform_divides_out_the_training_frequencies(shipped, crops):
    train, uniform = shipped.with_prior("train"), shipped.with_prior("uniform")
    z = train.logits(crops) / train.temperature
    log_prior = torch.tensor(shipped.class_prior, dtype=z.dtype).log()
    np.testing.assert_allclose(train.predict_proba(crops), torch.softmax(z, 1).numpy())
    np.testing.assert_allclose(
        uniform.predict_proba(crops), torch.softmax(z - log_prior, 1).numpy(), atol=1e-12
    )
    # answers move from the frequent emotions to the rare ones, never the other way
    before, after = train.predict_proba(crops).argmax(1), uniform.predict_proba(crops).argmax(1)
    assert (before != after).any()
    moved = np.asarray(shipped.class_prior)
    assert np.all(moved[after[before != after]] < moved[before[before != after]])


def test_it_pays_on_balanced_new_people_and_costs_on_the_training_distribution(
    shipped, require_data
):
    require_data("ckplus48")
    config = load_config("pretrained")
    ck = load_dataset(config, "ckplus48")
    y = np.asarray(ck.y)
    acc = {
        p: float((shipped.with_prior(p).predict_proba(ck.faces.images).argmax(1) == y).mean())
        for p in ("train", "uniform")
    }
    # CK+48 (927 faces of 106 people, none in FER-2013): +0.105 measured
    # (benchmarks/prior_correction.py), exact McNemar p 5e-15
    assert acc["uniform"] > acc["train"] + 0.05, acc
    # FER-2013's test faces are drawn like its training faces: there the prior is right
    sample = {p: sample_accuracy(shipped.with_prior(p), config) for p in ("train", "uniform")}
    assert sample["train"] > sample["uniform"], sample


def _saved(shipped, tmp_path, inference):
    return saved_with_inference(shipped, tmp_path / "model.pt", inference)


def test_file_setting_is_read_checked_and_covered_by_the_checksum(shipped, tmp_path):
    flat = [1 / 6] * 6
    model = load_model(_saved(shipped, tmp_path, {"class_prior": flat, "prior": "uniform"}))
    assert model.prior == "uniform" and model.class_prior == pytest.approx(flat)
    model = load_model(_saved(shipped, tmp_path, {"mirror": True}))
    assert (model.prior, model.class_prior) == ("train", None)
    bad = [
        {"prior": "balanced", "class_prior": flat},
        {"prior": "uniform"},  # nothing to divide out
        {"class_prior": flat[:5]},
        {"class_prior": [0.0, 0.2, 0.2, 0.2, 0.2, 0.2]},
        {"class_prior": [0.5] * 6},
        {"class_prior": "flat"},
    ]
    for inference in bad:  # never written ...
        with pytest.raises(PriorError):
            _saved(shipped, tmp_path, inference)
    path = _saved(shipped, tmp_path, {"class_prior": flat, "prior": "uniform"})
    for inference in bad:  # ... and refused, named, when a file says so
        payload = torch.load(path, weights_only=True)
        payload["metadata"]["inference"] = inference
        torch.save(payload, tmp_path / "edited.pt")
        with pytest.raises(ModelFileError, match="prior") as refused:
            load_model(tmp_path / "edited.pt")
        assert "edited.pt" in str(refused.value) and "\n" not in str(refused.value)
    # another distribution changes answers: the content checksum refuses it
    payload = torch.load(path, weights_only=True)
    payload["metadata"]["inference"]["class_prior"] = [0.1, 0.1, 0.1, 0.1, 0.1, 0.5]
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match="do not match their checksum"):
        load_model(tmp_path / "edited.pt")


def test_commands_take_it_and_refuse_a_file_without_a_prior(
    shipped, require_data, tmp_path, capsys
):
    from pathnet_fer.predict import Predictor

    require_data("jaffe")
    path = _saved(shipped, tmp_path, dict(shipped.metadata["inference"]))
    figures = {}
    for choice in ("train", "uniform"):
        out = tmp_path / choice
        args = ["evaluate", str(path), "--dataset", "jaffe", "--out", str(out), "--quiet"]
        assert main([*args, "--prior", choice]) == 0
        figures[choice] = pd.read_csv(out / "frames.csv")
        said = (out / "summary.md").read_text()
        assert ("uniform class prior" in said) == (choice == "uniform")
    assert not np.allclose(figures["train"]["p_max"], figures["uniform"]["p_max"])
    assert Predictor.from_file(path, detect=False).model.prior == "uniform"
    assert Predictor.from_file(path, detect=False, prior="train").model.prior == "train"
    # a file that records no prior: one clear line, naming the way out
    plain = _saved(shipped, tmp_path, {"mirror": True})
    capsys.readouterr()
    args = ["evaluate", str(plain), "--dataset", "jaffe", "--out", str(tmp_path / "x")]
    assert main([*args, "--prior", "uniform", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "records no class_prior" in err and "--prior train" in err
    with pytest.raises(ModelFileError, match="records no class_prior"):
        Predictor.from_file(plain, detect=False, prior="uniform")


def test_cross_dataset_table_keeps_each_prior_apart(shipped, crops):
    """Its memo of probabilities is keyed by every inference setting: the same weights
    under another prior (or mirror setting) are scored again, not served from the memo."""
    from pathnet_fer.experiments.cross_dataset import _Probas

    probas = _Probas()
    seen = [probas(shipped.with_prior(p).mirrored(m), crops, "faces")
            for p in ("train", "uniform") for m in (False, True)]  # fmt: skip
    for i in range(len(seen)):
        for j in range(i):
            assert not np.allclose(seen[i], seen[j])
    np.testing.assert_array_equal(seen[1], probas(shipped.with_prior("train"), crops, "faces"))


def test_cross_dataset_table_scores_each_file_under_both_priors(require_data, tmp_path):
    """Which prior to deploy is measured like which file: the table scores a file that
    records its training prior under both (the shipped one on CK+48 and JAFFE, people it
    never saw), and the recommendation names the prior with the file."""
    from pathnet_fer.experiments.cross_dataset import write_cross_dataset
    from pathnet_fer.scoring.on_faces import evaluate_faces

    for name in ("ckplus48", "jaffe"):
        require_data(name)
    config = load_config("ckplus-jaffe")  # sets over CK+48 and JAFFE; no model in tmp_path
    table, text = write_cross_dataset(tmp_path, config)
    rows = table.set_index(["candidate", "dataset"])
    assert list(dict.fromkeys(table.candidate)) == [
        "shipped pretrained model",  # the file's own default: uniform
        "shipped pretrained model, train prior",
    ]
    assert list(table.drop_duplicates("candidate").prior) == ["uniform", "train"]
    ck = load_dataset(config, "ckplus48")
    whole = load_model(pretrained_path())  # every seed it averages, not the first alone
    for prior, cand in (("uniform", "shipped pretrained model"),
                        ("train", "shipped pretrained model, train prior")):  # fmt: skip
        own = evaluate_faces(whole.with_prior(prior), ck.faces.images, ck.faces.frames,
                             ck.class_names)  # fmt: skip
        assert rows.loc[(cand, "ckplus48"), "accuracy"] == pytest.approx(own.frame["accuracy"])
    gain = (rows.loc[("shipped pretrained model", "ckplus48"), "accuracy"]
            - rows.loc[("shipped pretrained model, train prior", "ckplus48"), "accuracy"])  # fmt: skip
    assert gain > 0.05, gain  # +0.105 measured (benchmarks/prior_correction.py)
    assert "**shipped pretrained model**" in text and "--prior uniform`" in text
    written = pd.read_csv(tmp_path / "cross_dataset.csv")
    assert list(written.prior.unique()) == ["uniform", "train"]


def test_demo_hands_over_the_prior_its_best_candidate_was_measured_with(tmp_path):
    """``make demo`` prints the predict command for its best model: the file with the
    ``--prior`` it won with, the shipped model never (it is already the default)."""
    from pathnet_fer.experiments.demo import deployed_model

    rows = [
        ("source alone (fer2013)", "models/sources/s.pt", "train", 0.60, 0.50),
        ("source alone (fer2013), uniform prior", "models/sources/s.pt", "uniform", 0.58, 0.62),
        ("shipped pretrained model", "/pkg/default.pt", "uniform", 0.70, 0.70),
    ]
    table = pd.DataFrame(
        [{"candidate": c, "deploy": d, "prior": p, "dataset": ds, "accuracy": a}
         for c, d, p, *accs in rows for ds, a in zip(("fer2013", "ckplus48"), accs, strict=True)]
    )  # fmt: skip
    assert deployed_model(tmp_path, table) == (tmp_path / "models/sources/s.pt", "uniform")
    table.loc[table.prior == "uniform", "accuracy"] -= 0.1
    assert deployed_model(tmp_path, table) == (tmp_path / "models/sources/s.pt", "train")
