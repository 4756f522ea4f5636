"""A chain's heads model (issue 22, item 3): every link's path and readout in one file.

The chain FER-2013 -> CK+48 -> JAFFE runs once on real data (a small FER-2013 tree);
the checks: each head answers exactly as that link did (the source and the last link
bit for bit like their own files; the middle link with the held-out accuracy its link
recorded), each head's temperature was fit only on held-out faces it never trained on
(a fold model's on the *other* folds), the combination is the documented mean, and
``predict`` / ``evaluate`` expose ``--head``.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from fixture_trees import fer_subset
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.runner import run_experiment
from pathnet_fer.formats.loaded_model import ModelFileError
from pathnet_fer.formats.model_file import load_model
from pathnet_fer.pathnet.heads_model import HeadsModel

SET = "fer2013-to-ckplus48-to-jaffe"


@pytest.fixture(scope="module")
def heads_run(tmp_path_factory, require_data):
    for name in ("fer2013", "ckplus48", "jaffe"):
        require_data(name)
    base = tmp_path_factory.mktemp("heads")
    fer = fer_subset(require_data("fer2013"), base / "fer", train=25, test=8)
    settings = [
        f"datasets.fer2013={{adapter: fer2013, root: {fer}, folds: fixed}}",
        "sets=[{chain: [fer2013, ckplus48, jaffe]}]",
        "faces.size=16",
        "evolution.generations=4",
        "evolution.minibatches=4",
        "protocol.eval_every=2",
        "protocol.folds=3",
        "logging.progress=false",
        # its own source store: the chain tests train these sources themselves
        f"cache_dir={base / 'cache'}",
    ]
    config = load_config("small", settings)
    run_experiment(config, base / "run", executor=InlineExecutor(), quiet=True)
    return config, base / "run"


def _crops(n: int = 40) -> np.ndarray:
    return (np.random.default_rng(0).random((n, 16, 16)) * 255).astype(np.uint8)


def test_the_heads_are_the_links_themselves(heads_run):
    config, run = heads_run
    models = run / "models"
    for name, last in (("final_heads.pt", "final.pt"), ("link3_best_heads.pt", "link3_best.pt")):
        heads = load_model(models / SET / name)
        assert heads.format_version == 4 and heads.head_names == ["fer2013", "ckplus48", "jaffe"]
        x = _crops()
        source = load_model(models / "sources" / "source__fer2013__fold1__it1.pt")
        # the source and the last link answer bit for bit as their own model files (the
        # final fit's also with the same temperature; fold files carry none of their own)
        for head, own in (("fer2013", source), ("jaffe", load_model(models / SET / last))):
            chosen = heads.with_head(head)
            with torch.inference_mode():
                logits = chosen.model(chosen.features(x))
                assert torch.equal(logits, own.model(own.features(x)))
            if name == "final_heads.pt" or head == "fer2013":  # calibrated files
                assert chosen.temperature == own.temperature != 1.0
                assert np.array_equal(chosen.predict_proba(x), own.predict_proba(x))
            else:  # a fold model's file carries no temperature; its head a cross-fitted one
                assert own.temperature == 1.0 != chosen.temperature
        # three different heads (not one readout copied)
        answers = [heads.with_head(h).predict_proba(x) for h in heads.head_names]
        assert not np.allclose(answers[0], answers[1]) and not np.allclose(answers[1], answers[2])


def test_the_middle_head_is_the_fixed_ckplus48_link(heads_run):
    """The fold heads model's CK+48 head scores its fold's held-out CK+48 subjects with
    exactly the accuracy the chain recorded for that link when it was fixed."""
    from pathnet_fer.baselines.sgd_training import torch_threads
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.phases import link_rows

    config, run = heads_run
    heads = load_model(run / "models" / SET / "link3_best_heads.pt")
    fold, iteration = int(heads.metadata["fold"]), int(heads.metadata["iteration"])
    rows = link_rows(config, load_dataset(config, "ckplus48"), fold)
    metrics = pd.read_csv(run / "metrics.csv")
    recorded = metrics[(metrics.arm == "transfer") & (metrics.task == "ckplus48")
                       & (metrics.fold == fold) & (metrics.iteration == iteration)
                       & (metrics.split == "test") & (metrics.level == "frame")
                       & (metrics.metric == "accuracy")]  # fmt: skip
    recorded = recorded[recorded.generation == recorded.generation.max()]
    with torch_threads(config.executor.threads), torch.inference_mode():
        logits = heads.with_head("ckplus48").model(torch.as_tensor(rows.test_x))
    acc = float(np.mean(logits.argmax(1).numpy() == rows.test_y))
    assert acc == pytest.approx(float(recorded.value.iloc[0]), abs=1e-9)
    desc = heads.with_head("ckplus48").metadata
    assert desc["test_subjects"] == sorted(set(map(str, rows.test_subjects)))


def test_each_head_is_calibrated_on_held_out_faces_only(heads_run):
    """A fold model's link heads carry the temperature fit on the *other* folds (the
    calibration table's cross-fitted value), never on their own held-out faces; the
    final fit's the one fit on every fold."""
    from pathnet_fer.experiments.calibration import final_temperatures, read_heldout

    _, run = heads_run
    table = pd.read_csv(run / "calibration.csv", dtype={"fold": str, "iteration": str})
    fold_model = load_model(run / "models" / SET / "link3_best_heads.pt")
    final = load_model(run / "models" / SET / "final_heads.pt")
    meta = fold_model.metadata
    sets = read_heldout(run)
    everything = final_temperatures(sets)
    for task in ("ckplus48", "jaffe"):
        row = table[(table.arm == "transfer") & (table.task == task)
                    & (table.fold == str(meta["fold"]))
                    & (table.iteration == str(meta["iteration"]))]  # fmt: skip
        t_fold = fold_model.with_head(task).temperature
        assert t_fold == pytest.approx(float(row.temperature.iloc[0]), rel=1e-12)
        t_all = everything[(meta["experiment"], task)][0]
        assert final.with_head(task).temperature == pytest.approx(t_all, rel=1e-12)
        assert not math.isclose(t_fold, t_all)  # its own fold's faces change the fit
        assert "folds" in fold_model.metadata["head_calibration"][task]["fit_on"]


def test_the_combination_is_the_mean_of_the_calibrated_heads(heads_run):
    _, run = heads_run
    heads = load_model(run / "models" / SET / "final_heads.pt")
    x = _crops()
    parts = [heads.with_head(h).predict_proba(x) for h in heads.head_names]
    combined = heads.predict_proba(x)
    np.testing.assert_allclose(combined, np.mean(parts, axis=0), rtol=1e-6, atol=1e-9)
    assert heads.with_head("combined") is heads


def test_each_head_records_its_training_prior_and_uniform_divides_out_each(heads_run, tmp_path):
    """``--prior uniform`` on a heads model: each head divides out the class frequencies
    of its own training faces (the source's FER-2013 ones, the last link's JAFFE ones),
    then the heads are mixed as usual."""
    from pathnet_fer.formats.model_file import save_loaded

    _, run = heads_run
    models = run / "models"
    heads = load_model(models / SET / "final_heads.pt")
    source = load_model(models / "sources" / "source__fer2013__fold1__it1.pt")
    last = load_model(models / SET / "final.pt")
    assert heads.prior == "train" and heads.has_prior
    assert set(heads.head_priors) == set(heads.head_names)
    assert heads.head_priors["fer2013"] == source.class_prior
    assert heads.head_priors["jaffe"] == last.class_prior
    assert heads.head_priors["fer2013"] != heads.head_priors["jaffe"]
    x = _crops()
    uniform = heads.with_prior("uniform")
    for head, own in (("fer2013", source), ("jaffe", last)):
        np.testing.assert_allclose(
            uniform.with_head(head).predict_proba(x), own.with_prior("uniform").predict_proba(x),
            rtol=1e-9, atol=1e-12,
        )  # fmt: skip
    parts = [uniform.with_head(h).predict_proba(x) for h in heads.head_names]
    combined = uniform.predict_proba(x)
    np.testing.assert_allclose(combined, np.mean(parts, axis=0), rtol=1e-6, atol=1e-9)
    assert not np.allclose(combined, heads.predict_proba(x))
    # the file's own default, and files that record no (or a broken) per-head prior
    inference = dict(heads.metadata["inference"])
    saved = save_loaded(
        tmp_path / "u.pt", heads, {**heads.metadata, "inference": {**inference, "prior": "uniform"}}
    )
    np.testing.assert_allclose(load_model(saved).predict_proba(x), combined, rtol=1e-12)
    bare = {k: v for k, v in heads.metadata.items() if k != "inference"}
    plain = load_model(save_loaded(tmp_path / "plain.pt", heads, bare))
    with pytest.raises(ModelFileError, match="records no class_prior"):
        plain.with_prior("uniform")
    # with mirror averaging too, each head answers as its own file, then the mix
    for prior in ("train", "uniform"):
        both = heads.with_prior(prior).mirrored(True)
        mean = np.mean([both.with_head(h).predict_proba(x) for h in heads.head_names], axis=0)
        np.testing.assert_allclose(both.predict_proba(x), mean, rtol=1e-6, atol=1e-9)
        own = source.with_prior(prior).mirrored(True).predict_proba(x)
        np.testing.assert_allclose(both.with_head("fer2013").predict_proba(x), own, rtol=1e-9)
    with pytest.raises(ValueError, match="one class prior per head"):
        save_loaded(tmp_path / "one.pt", heads,
                    {**bare, "inference": {"class_prior": list(source.class_prior)}})  # fmt: skip
    with pytest.raises(ValueError, match="uniform. but no"):
        save_loaded(tmp_path / "none.pt", heads, {**bare, "inference": {"prior": "uniform"}})
    partial = {**inference["head_class_priors"]}
    partial.pop("ckplus48")
    with pytest.raises(ValueError, match="every head"):
        save_loaded(
            tmp_path / "bad.pt", heads, {**bare, "inference": {"head_class_priors": partial}}
        )


def test_heads_with_other_emotions_mix_over_their_union():
    """An emotion only some heads know is averaged over those heads, then renormalised."""

    class Fixed(torch.nn.Module):
        def __init__(self, logits):
            super().__init__()
            self.logits = torch.nn.Parameter(torch.tensor(logits, dtype=torch.float32))

        def forward(self, x):
            return self.logits.expand(len(x), -1)

    a = Fixed([math.log(0.8), math.log(0.2)])  # anger, happiness
    b = Fixed([math.log(0.5), math.log(0.5)])  # happiness, sadness
    m = HeadsModel([a, b], ["a", "b"], [["anger", "happiness"], ["happiness", "sadness"]],
                   weights=[1.0, 3.0])  # fmt: skip
    assert m.class_names == ("anger", "happiness", "sadness")
    p = m.combined_proba(torch.zeros(2, 4))[0].detach().numpy()
    raw = np.array([0.8, (0.2 * 1 + 0.5 * 3) / 4, 0.5])
    np.testing.assert_allclose(p, raw / raw.sum(), rtol=1e-6)  # float32 logits
    with pytest.raises(ValueError, match="distinct"):
        HeadsModel([a, b], ["a", "a"], [["anger"], ["anger"]])


def test_an_edited_head_temperature_is_refused(heads_run, tmp_path):
    _, run = heads_run
    payload = torch.load(run / "models" / SET / "final_heads.pt", weights_only=True)
    payload["model_config"]["heads"][0]["temperature"] = 0.5
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(ModelFileError, match="checksum"):
        load_model(tmp_path / "edited.pt")


def test_predict_and_evaluate_take_a_head(heads_run, tmp_path, require_data):
    _, run = heads_run
    model = run / "models" / SET / "final_heads.pt"
    images = sorted(require_data("jaffe").glob("*.tiff"))[:2]
    cli = [sys.executable, "-m", "pathnet_fer.cli"]
    out = tmp_path / "all.csv"
    done = subprocess.run(
        [*cli, "predict", *map(str, images), "--model", str(model), "--head", "all",
         "--out", str(out), "--quiet"], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    from pathnet_fer.predict.columns import read_predictions
    from pathnet_fer.predict.summary import summarise

    table = read_predictions(str(out))
    classes = list(load_model(model).class_names)
    heads_p = []
    for head in ("fer2013", "ckplus48", "jaffe"):
        assert f"p_happiness@{head}" in table and f"emotion@{head}" in table
        heads_p.append(table[[f"p_{c}@{head}" for c in classes]].to_numpy())
        mine = table[[f"p_{c}@{head}" for c in classes]].to_numpy().argmax(1)
        assert list(table[f"emotion@{head}"].astype(str)) == [classes[i] for i in mine]
    # the combined columns are the mean of the heads' (the default rule)
    np.testing.assert_allclose(table[[f"p_{c}" for c in classes]].to_numpy(),
                               np.mean(heads_p, axis=0), rtol=1e-6)  # fmt: skip
    assert len(summarise(table, classes)) == 2  # the summary reads the main answer
    bad = subprocess.run(
        [*cli, "predict", str(images[0]), "--model", str(model), "--head", "ravdess",
         "--out", str(tmp_path / "x.csv")], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "no head 'ravdess'" in bad.stderr and "fer2013, ckplus48, jaffe" in bad.stderr
    assert "Traceback" not in bad.stderr
    ev = subprocess.run(
        [*cli, "evaluate", str(model), "--dataset", "jaffe", "--head", "all", "--quiet",
         "--out", str(tmp_path / "ev")], capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert "| fer2013 | 183 |" in ev.stdout and "| combined | 183 |" in ev.stdout
    assert (tmp_path / "ev" / "jaffe" / "summary.csv").exists()
    # the source head never saw JAFFE (no note); the JAFFE head of a final fit saw everyone
    src = (tmp_path / "ev" / "fer2013" / "summary.md").read_text()
    last = (tmp_path / "ev" / "jaffe" / "summary.md").read_text()
    assert "final fit" not in src and "trained on every subject of jaffe" in last


def test_head_temperatures_already_written_are_not_written_again(heads_run, tmp_path):
    """The deploy step writes a heads file once: the same fits again leave the file as it
    is (same inode); other fits write it (a new file, renamed into place)."""
    import shutil

    from pathnet_fer.formats.model_calibration import set_head_temperatures

    _, run = heads_run
    path = tmp_path / "heads.pt"
    shutil.copyfile(run / "models" / SET / "final_heads.pt", path)
    fits = load_model(path).metadata["head_calibration"]
    before = path.stat()
    set_head_temperatures(path, fits)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    other = {name: {**fit, "temperature": fit["temperature"] * 0.5} for name, fit in fits.items()}
    set_head_temperatures(path, other)
    assert path.stat().st_ino != before.st_ino
    assert load_model(path).metadata["head_calibration"] == other
