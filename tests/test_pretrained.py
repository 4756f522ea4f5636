"""The shipped pretrained model (src/pathnet_fer/pretrained/default.pt, docs/model-card.md):
it loads safely, it is the model of today's recipe (configs/pretrained.yaml), it reaches
its card's figures, predict and evaluate use it without --model; the build is seeded (a
tiny recipe rebuilt twice gives the same weights) and the demo's comparison table scores
both models on the same faces."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from pathnet_fer.cli import main
from pathnet_fer.datasets.loading import load_dataset
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.datasets import dataset_folds
from pathnet_fer.formats.model_file import load_model, save_loaded, save_path_model
from pathnet_fer.paths import REPO_ROOT
from pathnet_fer.pretrained import MODEL_ENV, pretrained_path
from pathnet_fer.pretrained.build import MAX_BYTES
from pathnet_fer.pretrained.figures import sample_accuracy
from pathnet_fer.pretrained.info import pretrained_info
from pathnet_fer.pretrained.recipe import recipe_differences
from pathnet_fer.safe_load import load_plain

CARD = REPO_ROOT / "docs" / "model-card.md"
SIX = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


@pytest.fixture(scope="module")
def shipped():
    return load_model(pretrained_path())


def test_shipped_file_loads_through_the_safe_loader(shipped):
    path = pretrained_path()
    assert path == REPO_ROOT / "src" / "pathnet_fer" / "pretrained" / "default.pt"
    assert 0 < path.stat().st_size < MAX_BYTES
    payload = load_plain(path, "pathnet-fer model file")  # weights_only: runs no code
    assert (
        payload["format"] == "pathnet-fer-model" and payload["model_kind"] == "pathnet-block-path"
    )
    assert list(shipped.class_names) == SIX
    assert shipped.input.describe() == "48x48 grey crops (2304 inputs)"
    assert shipped.metadata["arm"] == "source" and shipped.dataset == "fer2013"
    assert (
        shipped.temperature != 1.0 and "source units" in shipped.metadata["calibration"]["fit_on"]
    )
    assert shipped.metadata["held_out_splits"] == ["test"]
    # the wheel carries it (package data)
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["setuptools"]["package-data"]["pathnet_fer.pretrained"] == [path.name]


def test_recorded_recipe_is_configs_pretrained():
    """A changed recipe (this file, a file it extends, or a default it relies on) without
    a rebuilt model fails here: `pathnet-fer pretrained build`, then update the card."""
    assert recipe_differences() == []


def test_recipe_rule_missing_keys_read_as_defaults(shipped, tmp_path):
    info = pretrained_info()

    def copy(config: dict) -> Path:
        path = tmp_path / f"copy{len(list(tmp_path.iterdir()))}.pt"
        meta = {**shipped.metadata, "pretrained": {**info, "config": config}}
        save_path_model(path, shipped.model, class_names=shipped.class_names,
                        face_settings=shipped.face_settings, dataset=shipped.dataset,
                        metadata=meta)  # fmt: skip
        return path

    from pathnet_fer.evolution.config import EvolutionConfig

    config = info["config"]
    # a key the schema gains later with its default value: the file stays current
    assert config["evolution"]["mutation_shift"] == EvolutionConfig().mutation_shift
    later = {**config, "evolution": {k: v for k, v in config["evolution"].items()
                                     if k != "mutation_shift"}}  # fmt: skip
    assert recipe_differences(copy(later)) == []
    # ... but a key recorded with another value than the default is a changed recipe
    budget = config["protocol"]["source_generations"]
    assert budget is not None  # its default (None: evolution.generations) is not the recipe's
    protocol = {k: v for k, v in config["protocol"].items() if k != "source_generations"}
    diff = recipe_differences(copy({**config, "protocol": protocol}))
    assert diff == [f"protocol.source_generations: None (model file) != {budget} (now)"]
    # and a changed setting now (an override) is one too; run-only settings are not
    lr = config["evolution"]["lr"]
    assert recipe_differences(overrides=[f"evolution.lr={2 * lr}"]) == [
        f"evolution.lr: {lr} (model file) != {2 * lr} (now)"
    ]
    assert recipe_differences(overrides=["executor.workers=1", "logging.progress=false"]) == []


def test_sample_of_fer2013_test_reaches_the_card_figure(shipped, require_data):
    require_data("fer2013")
    sample = pretrained_info()["sample"]
    assert (sample["dataset"], sample["split"], sample["n"]) == ("fer2013", "test", 600)
    accuracy = sample_accuracy(shipped, load_config("pretrained"), sample["n"], sample["seed"])
    assert accuracy == pytest.approx(sample["accuracy"], abs=0.02)
    # the card states the figures the file records
    card = CARD.read_text()
    assert f"{sample['accuracy']:.3f}" in card
    for key, figure in pretrained_info()["figures"].items():
        assert f"{figure['accuracy']:.3f}" in card, key
        assert figure["command"] in card, key


def test_predict_without_model_uses_the_shipped_one(require_data, tmp_path, capsys):
    clip = require_data("face-media") / "single_face.mp4"
    out = tmp_path / "preds.csv"
    assert main(["predict", str(clip), "--out", str(out), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("the shipped pretrained model") == 1 and str(pretrained_path()) in err
    table = pd.read_csv(out)
    assert len(table) == 72 and table["emotion"].notna().sum() > 60
    assert [c for c in table.columns if c.startswith("p_")] == [f"p_{c}" for c in SIX]
    assert (out.with_name("preds.summary.csv")).is_file()


def test_predict_info_without_model_prints_the_summary(capsys):
    assert main(["predict", "--info"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(pretrained_info()["summary"])
    assert "Held out, FER-2013 test split" in out and "research use only" in out
    assert main(["predict", "--model", str(pretrained_path()), "--info"]) == 0
    assert '"weights_sha256"' not in capsys.readouterr().out  # --model: the JSON header
    assert main(["pretrained", "info"]) == 0 and "docs/model-card.md" in capsys.readouterr().out


def test_evaluate_without_model_gives_the_card_figure(require_data, tmp_path, capsys):
    require_data("ckplus48")
    assert main(["evaluate", "--dataset", "ckplus48", "--out", str(tmp_path), "--quiet"]) == 0
    assert capsys.readouterr().err.count("the shipped pretrained model") == 1
    summary = pd.read_csv(tmp_path / "summary.csv").iloc[0]
    recorded = pretrained_info()["figures"]["ckplus48"]
    assert summary.n_frames == recorded["faces"]
    assert summary.frame_accuracy == pytest.approx(recorded["accuracy"], abs=0.02)


def test_predictor_pretrained_one_liner(require_data):
    from pathnet_fer.predict import Predictor

    rows = Predictor.pretrained().predict_image(require_data("face-media") / "single_face.jpg")
    assert len(rows) == 1 and rows["emotion"].iloc[0] in SIX


def test_no_shipped_model_is_one_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv(MODEL_ENV, str(tmp_path / "missing.pt"))
    assert main(["predict", "clip.mp4"]) == 1
    assert "no shipped model" in capsys.readouterr().err


# --------------------------------------------------------------------------- the build
TINY = [
    "protocol.source_generations=3",
    "evolution.generations=2",
    "evolution.minibatches=2",
    "evolution.population=6",
    "evolution.selection_samples=64",
    "pathnet.modules=6",
    "pathnet.max_active=2",
    "pathnet.channels=[4,8,8]",
    "protocol.eval_every=1",
    "protocol.reuse_sources=false",  # the second build must train, not reuse the first
    "executor.kind=inline",
    "logging.progress=false",
    "protocol.final_fit=true",  # the recipe fits none; the cross-dataset test needs them
]


@pytest.fixture(scope="module")
def tiny_builds(require_data, tmp_path_factory):
    """The build twice, at a tiny budget on a FER-2013 subset, figures not measured."""
    from fixture_trees import fer_subset
    from pathnet_fer.pretrained.build import build_pretrained

    for name in ("ckplus48", "jaffe"):
        require_data(name)
    base = tmp_path_factory.mktemp("pretrained-build")
    fer = fer_subset(require_data("fer2013"), base / "fer", 20, 10)
    # the session's crop cache (conftest), shared with the other tests' CK+48 and JAFFE crops
    cache = tmp_path_factory.getbasetemp() / "cache"
    overrides = [*TINY, f"datasets.fer2013.root={fer}", f"cache_dir={cache}"]
    builds = [
        build_pretrained(
            "pretrained",
            overrides,
            run_dir=base / f"run{i}",
            dest=base / f"model{i}.pt",
            figures=(),
            sample=(30, 1),
            quiet=True,
            log=lambda m: None,
        )  # fmt: skip
        for i in (1, 2)
    ]
    return overrides, builds


@pytest.mark.slow
def test_build_is_seeded_and_records_its_recipe(tiny_builds):
    from pathnet_fer.experiments.calibration import fit_temperature, read_heldout

    overrides, (a, b) = tiny_builds
    payloads = [load_plain(r.path, "model") for r in (a, b)]
    assert payloads[0]["weights_sha256"] == payloads[1]["weights_sha256"]
    ma, mb = (p["metadata"] for p in payloads)
    assert ma["pretrained"]["sample"] == mb["pretrained"]["sample"]
    assert ma["calibration"] == mb["calibration"]
    assert recipe_differences(a.path, "pretrained", overrides) == []
    assert recipe_differences(a.path, "pretrained", [*overrides, "evolution.generations=3"])
    # the shipped file is the run's FER-2013 source model, calibrated on its held-out faces
    assert a.source == a.run_dir / "models" / "sources" / "source__fer2013__fold1__it1.pt"
    (unit,) = [s for s in read_heldout(a.run_dir) if s["arm"] == "source"]
    assert unit["task"] == "fer2013" and len(unit["label"]) == 60  # 6 classes x 10 test faces
    run_model = load_model(a.source)
    assert run_model.temperature == pytest.approx(fit_temperature(unit["proba"], unit["label"]))
    # ... and shipped mirror-averaged, its temperature fitted again on the same 60 faces
    shipped = load_model(a.path)
    assert shipped.mirror and not run_model.mirror and ma["inference"]["mirror"] is True
    # ... assuming a uniform prior over the training faces' frequencies, which the run's
    # source model records too (20 training faces of each class: 1/6 each)
    assert shipped.prior == "uniform" and run_model.prior == "train"
    assert shipped.class_prior == run_model.class_prior == pytest.approx([1 / 6] * 6)
    config = load_config("pretrained", overrides)
    data = load_dataset(config, "fer2013")
    test = dataset_folds(config, "fer2013", data)[0].test_index
    assert sorted(np.asarray(data.y)[test]) == sorted(unit["label"])
    logits = shipped.logits(data.faces.images[test])
    y = torch.as_tensor(np.asarray(data.y)[test])

    def nll(t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits / t, y))

    t = shipped.temperature
    assert t != pytest.approx(run_model.temperature, rel=1e-3)
    assert nll(t) <= min(nll(t * 1.05), nll(t / 1.05), nll(run_model.temperature))
    assert ma["held_out_splits"] == ["test"] and "summary" in ma["pretrained"]
    # The file names the host its run trained on (the same seed trains other weights on
    # another host) and the host that built it.
    assert ma["pretrained"]["trained_on"][0]["cpu_capability"]
    assert ma["pretrained"]["built_on"]["cpus"] >= 1
    assert "only on the host that trained it" in ma["pretrained"]["summary"]


@pytest.mark.slow
def test_cross_dataset_table_scores_every_candidate_on_people_it_never_saw(tiny_builds):
    """The report's deployment table (experiments/cross_dataset.py): each of the run's
    candidates and the shipped model, on faces of people the candidate never trained on."""
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.cross_dataset import (
        cross_dataset_markdown,
        cross_dataset_table,
        recommended,
    )
    from pathnet_fer.experiments.datasets import dataset_folds
    from pathnet_fer.predict.evaluate import evaluate_faces

    overrides, (a, b) = tiny_builds
    config = load_config("pretrained", overrides)
    clips = {"crema-d-sample": config.resolved_data_root() / "crema-d-sample"}
    table = cross_dataset_table(a.run_dir, config, shipped=b.path, clip_sets=clips)
    # a file that records its training prior (a heads model: every head's) is scored
    # under both priors
    names = ["source alone (fer2013)", "fer2013->ckplus48: last link (ckplus48)",
             "fer2013->ckplus48: every link, combined", "fer2013->jaffe: last link (jaffe)",
             "fer2013->jaffe: every link, combined"]  # fmt: skip
    assert list(dict.fromkeys(table.candidate)) == [
        *(n for name in names for n in (name, f"{name}, uniform prior")),
        "shipped pretrained model",
        "shipped pretrained model, train prior",
    ]
    priors = table.drop_duplicates("candidate").set_index("candidate").prior
    assert list(priors) == ["train", "uniform"] * 5 + ["uniform", "train"]
    fer = table[table.dataset == "fer2013"]
    assert len(fer) == 12 and (fer.n == 60).all()  # the test split, which nobody trained on
    data = load_dataset(config, "ckplus48")
    ck = table[table.dataset == "ckplus48"].set_index("candidate")
    # the final fit saw every CK+48 subject: its fold model on that fold's held-out people,
    # and every other candidate on the same people (none of them trained on them)
    fold_file = load_model(a.run_dir / "models" / "fer2013-to-ckplus48" / "transfer_best_heads.pt")
    test = dataset_folds(config, "ckplus48", data)[int(fold_file.metadata["fold"]) - 1].test_index
    assert (ck.n == len(test)).all() and len(test) < len(data.y)
    row = ck.loc["fer2013->ckplus48: last link (ckplus48)"]
    assert "held-out people" in row.faces and row.model.endswith("(last head)")
    for name, model in (
        ("fer2013->ckplus48: last link (ckplus48)", fold_file.with_head("ckplus48")),
        ("fer2013->ckplus48: every link, combined, uniform prior", fold_file.with_prior("uniform")),
        ("source alone (fer2013)", load_model(a.source)),
        ("source alone (fer2013), uniform prior", load_model(a.source).with_prior("uniform")),
        ("shipped pretrained model", load_model(b.path)),
        ("shipped pretrained model, train prior", load_model(b.path).with_prior("train")),
    ):
        own = evaluate_faces(model, data.faces.images[test], data.faces.frames.iloc[test],
                             data.class_names)  # fmt: skip
        assert ck.loc[name, "accuracy"] == pytest.approx(own.frame["accuracy"]), name
    assert row.deploy == "models/fer2013-to-ckplus48/final.pt"
    combined = ck.loc["fer2013->ckplus48: every link, combined"]
    assert combined.deploy.endswith("final_heads.pt")
    crema = table[table.dataset == "crema-d-sample"]
    assert len(crema) == 12 and crema.clips.str.fullmatch(r"\d/5").all()
    best = recommended(table)
    means = table.pivot_table(index="candidate", columns="dataset", values="accuracy").mean(axis=1)
    assert best["mean_accuracy"] == pytest.approx(means.max())  # ties: the first listed
    assert best["candidate"] == next(c for c in table.candidate if means[c] == means.max())
    md = cross_dataset_markdown(table)
    assert "| candidate | fer2013 | ckplus48 | jaffe | crema-d-sample |" in md


@pytest.mark.slow
def test_cross_dataset_never_scores_faces_a_candidate_trained_on(tiny_builds):
    """Which faces of a dataset a candidate may be scored on, from what its file says it
    learnt: a fixed-split source its test split; a later link that learnt the dataset
    (a final fit saw every row) only through its fold model; a pooled link not at all."""
    from dataclasses import replace

    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.cross_dataset import Candidate, _allowed
    from pathnet_fer.experiments.datasets import dataset_folds

    overrides, (a, _) = tiny_builds
    config = load_config("pretrained", overrides)
    fer = load_dataset(config, "fer2013")
    test = dataset_folds(config, "fer2013", fer)[0].test_index
    source = load_model(a.source)
    cand = Candidate("x", a.source)
    scorer, index, faces = _allowed(cand, source, "fer2013", fer, config)
    assert scorer is source and np.array_equal(index, test) and "training split only" in faces
    ck, fer_item = ({"dataset": n, "adapters": [n]} for n in ("ckplus48", "fer2013"))
    later = replace(source, metadata={**source.metadata, "trained_on": [ck, fer_item]})
    assert _allowed(cand, later, "fer2013", fer, config)[0] is None  # no fold model: skipped
    pooled = {"dataset": "posed", "adapters": ["fer2013", "jaffe"],
              "members": {"fer2013_sharp": 10, "jaffe": 5}}  # fmt: skip
    mixed = replace(source, metadata={**source.metadata, "trained_on": [ck, pooled]})
    scorer, index, reason = _allowed(cand, mixed, "fer2013", fer, config)
    assert scorer is None and "pooled" in reason
    # FER+ relabels FER-2013's images: a FER+ source shares them
    plus = replace(source, metadata={**source.metadata,
                                     "trained_on": [{"dataset": "ferplus", "adapters": ["ferplus"]}]})  # fmt: skip
    assert "training split only" in _allowed(cand, plus, "fer2013", fer, config)[2]


# --------------------------------------------------------------------------- several seeds
@pytest.fixture(scope="module")
def tiny_seeds(tiny_builds, tmp_path_factory):
    """Seeds 0 and 1 of the tiny recipe built and shipped as one model."""
    from pathnet_fer.pretrained.build import build_pretrained

    overrides, _ = tiny_builds
    base = tmp_path_factory.mktemp("pretrained-seeds")
    result = build_pretrained("pretrained", overrides, run_dir=base, dest=base / "seeds.pt",
                              figures=(), sample=(30, 1), quiet=True, log=lambda m: None,
                              seeds=(0, 1))  # fmt: skip
    return overrides, base, result


@pytest.mark.slow
def test_seeds_ship_as_one_model_that_averages_each_seed_as_it_ships(tiny_builds, tiny_seeds):
    from pathnet_fer.pretrained.build import combine_built

    overrides, (a, _) = tiny_builds
    _, base, result = tiny_seeds
    combined = load_model(result.path)
    members = [load_model(base / f"seed{s}.pt") for s in (0, 1)]
    assert (
        combined.head_names == ["seed0", "seed1"]
        and combined.mirror
        and combined.prior == "uniform"
    )
    # seed 0 is the tiny build above, trained again in its own run: the same weights; seed 1
    # is another draw
    sha = [load_plain(base / f"seed{s}.pt", "model")["weights_sha256"] for s in (0, 1)]
    assert sha[0] == load_plain(a.path, "model")["weights_sha256"] != sha[1]
    # each head is its seed's file bit for bit, with its temperature and training prior
    for h, m in enumerate(members):
        head = combined.model.heads[h].state_dict()
        assert all(torch.equal(v, m.model.state_dict()[k]) for k, v in head.items())
        assert combined.model.temperatures[h] == m.temperature
        assert combined.head_priors[f"seed{h}"] == pytest.approx(m.class_prior)
    # the combination is the mean of the seeds' probabilities, each as its own file answers
    config = load_config("pretrained", overrides)
    faces = load_dataset(config, "fer2013").faces.images[:40]
    each = [m.predict_proba(faces) for m in members]
    assert np.allclose(combined.predict_proba(faces), np.mean(each, axis=0), atol=1e-9)
    assert np.allclose(combined.with_head("seed1").predict_proba(faces), each[1], atol=1e-12)
    # ... and a head written out alone is its seed's file again, inference settings included
    alone = save_loaded(base / "alone.pt", (head := combined.with_head("seed1")), head.metadata)
    assert load_model(alone).metadata["inference"] == members[1].metadata["inference"]
    assert np.allclose(load_model(alone).predict_proba(faces), each[1], atol=1e-12)
    assert not np.allclose(each[0], each[1], atol=1e-3)
    # the recipe check knows the seeds; the card in short says what the file is
    assert recipe_differences(result.path, "pretrained", overrides, seeds=(0, 1)) == []
    assert recipe_differences(result.path, "pretrained", overrides, seeds=(0, 1, 2)) == [
        "seeds: [0, 1] (model file) != [0, 1, 2] (now)"
    ]
    info = load_plain(result.path, "model")["metadata"]["pretrained"]
    assert info["seeds"] == [0, 1] and [m["seed"] for m in info["members"]] == [0, 1]
    assert "2 seeds (0, 1) of one recipe" in info["summary"]
    assert info["build_command"].startswith("pathnet-fer pretrained build --seeds 0 1 ")
    # the seeds' files combine again into the same model; a file of another recipe does not
    again = combine_built([base / "seed1.pt", base / "seed0.pt"], "pretrained", overrides,
                          dest=base / "again.pt", figures=(), sample=(30, 1),
                          log=lambda m: None)  # fmt: skip
    assert load_model(again.path).head_names == ["seed0", "seed1"]  # in seed order, always
    assert np.allclose(load_model(again.path).predict_proba(faces), combined.predict_proba(faces))
    # a member's destination budget is its own (the source has its own budget) ...
    combine_built([base / "seed0.pt", base / "seed1.pt"], "pretrained",
                  [*overrides, "evolution.generations=5"], dest=base / "dest.pt", figures=(),
                  sample=(30, 1), log=lambda m: None)  # fmt: skip
    # ... but any setting that trains the source must be the recipe's
    with pytest.raises(ValueError, match="seed0.pt is not seed 0 of the recipe"):
        combine_built([base / "seed0.pt", base / "seed1.pt"], "pretrained",
                      [*overrides, "evolution.lr=0.5"], dest=base / "bad.pt", figures=(),
                      log=lambda m: None)  # fmt: skip


def test_seeds_that_do_not_fit_together_are_refused(shipped, capsys):
    from pathnet_fer.pretrained.seeds import combine_seeds

    with pytest.raises(ValueError, match="mirror setting"):
        combine_seeds([shipped, shipped.mirrored(not shipped.mirror)], [0, 1], "uniform")
    with pytest.raises(ValueError, match="seeds must differ"):
        combine_seeds([shipped, shipped], [0, 0], "uniform")
    assert main(["pretrained", "combine", str(pretrained_path())]) == 2
    assert "two seeds or more" in capsys.readouterr().err
    assert main(["pretrained", "check", "somefile.pt"]) == 2
    assert "only combine" in capsys.readouterr().err
    # a seed given twice, two ways, is one clear error (not one silently winning)
    assert main(["pretrained", "build", "--seeds", "1", "--set", "seed=2"]) == 2
    assert "not both" in capsys.readouterr().err
