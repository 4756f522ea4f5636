"""A tiny real experiment (CK+48 and JAFFE, 2 folds, a few generations): every output
exists and is consistent; killing and re-running resumes to the identical result."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest

from pathnet_fer.datasets.loading import DataMissingError, check_data, load_dataset
from pathnet_fer.experiments.calibration import apply_temperature, fit_temperature, read_heldout
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.job_plan import plan_jobs
from pathnet_fer.experiments.metrics_log import COLUMNS, read_metrics
from pathnet_fer.experiments.phases import build_phases, source_phase
from pathnet_fer.experiments.plan import source_job
from pathnet_fer.experiments.run_compat import RunDirError
from pathnet_fer.experiments.runner import run_experiment

# Small but real: the paper's network, fewer minibatches per path and generations.
TINY = [
    "evolution.generations=6",
    "evolution.minibatches=8",
    "protocol.eval_every=3",
    "protocol.folds=2",
    "protocol.iterations=1",
    "logging.progress=false",
]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, require_data):
    require_data("ckplus48")
    require_data("jaffe")
    # Module-scoped: name the per-session cache explicitly (conftest's autouse cache
    # fixture is function-scoped and not active yet here).
    cache = tmp_path_factory.getbasetemp() / "cache"
    config = load_config("small", [*TINY, f"cache_dir={cache}"])
    out = tmp_path_factory.mktemp("tiny") / "run"
    result = run_experiment(config, out, executor=InlineExecutor(), quiet=True)
    return config, out, result


SAME = "ckplus48->ckplus48"  # the calibration checks' set: a transfer arm, 2 folds


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def test_tiny_experiment_writes_every_output(tiny_run):
    config, out, result = tiny_run
    for name in (
        "config.yaml",
        "run.json",
        "metrics.csv",
        "summary.csv",
        "summary.md",
        "paired_tests.csv",
        "confusion.csv",
        "folds.csv",
        "log.txt",
    ):
        assert (out / name).stat().st_size > 0, name
    meta = json.loads((out / "run.json").read_text())
    assert meta["seed"] == config.seed and meta["versions"]["torch"]
    assert {"python", "numpy", "cv2", "av", "sklearn", "pathnet_fer"} <= set(meta["versions"])
    assert "git_commit" in meta and "independent repetition" in meta["iteration_reading"]
    machine = meta["sessions"][-1]["host"]  # where it trained: weights differ by host
    assert machine["cpu_capability"] and machine["cpus"] >= 1 and "torch_threads" in machine
    assert load_config(out / "config.yaml").to_dict() == config.to_dict()

    metrics = read_metrics(out)
    assert tuple(metrics.columns) == COLUMNS
    sets = [s.name for s in config.sets]
    assert sorted(metrics.experiment.unique()) == sorted(sets)
    for s in config.sets:
        m = metrics[metrics.experiment == s.name]
        assert set(m.arm) == {"source", "transfer", "scratch", "zero-shot"}
        for arm in ("source", "transfer", "scratch"):
            a = m[(m.arm == arm) & (m.metric != "forgetting")]
            assert set(a.fold) == {1, 2} and set(a.iteration) == {1}
            train = a[(a.split == "train") & (a.metric == "accuracy")]
            assert sorted(train.generation.unique()) == list(range(1, 7))
            assert len(train) == 6 * 2  # one row per generation and run
            test = a[(a.split == "test") & (a.level == "frame") & (a.metric == "accuracy")]
            assert sorted(test.generation.unique()) == [3, 6]  # every K and at the end
            assert set(a[a.split == "test"].level) == {"frame", "clip"}
        assert set(m[m.arm != "source"].task) == {s.destination}
        # The source's own held-out score stays what it was after the destination link.
        forgetting = m[m.metric == "forgetting"]
        assert set(forgetting.arm) == {"source"} and len(forgetting) == 2
        assert (forgetting.value == 0).all()
        zero = m[(m.arm == "zero-shot") & (m.level == "frame") & (m.metric == "accuracy")]
        assert set(zero.fold) == {1, 2} and zero.value.between(0, 1).all()
    acc = metrics[metrics.metric.isin(["accuracy", "macro_f1", "uar"])].value
    assert acc.between(0, 1).all()

    summary = pd.read_csv(out / "summary.csv")
    final = summary[
        (summary.split == "test") & (summary.level == "frame") & (summary.metric == "accuracy")
    ]
    assert len(final) == 4 * len(sets) and (final.n == 2).all() and (final.n_folds == 2).all()
    text = (out / "summary.md").read_text()
    assert all(f"## {name}" in text for name in sets) and "Wilcoxon" in text
    paired = pd.read_csv(out / "paired_tests.csv")
    assert set(paired.experiment) == set(sets) and (paired.n_folds == 2).all()

    figures = {p.name for p in (out / "figures").glob("*.png")}
    for name in sets:
        slug = name.replace("->", "-to-")
        assert f"learning_curves_{slug}.png" in figures
        assert f"confusion_{slug}.png" in figures
    assert all((out / "figures" / f).stat().st_size > 5000 for f in figures)

    confusion = pd.read_csv(out / "confusion.csv")
    # Each run's frame confusion counts its fold's test crops exactly once.
    plan = pd.read_csv(out / "folds.csv")
    for s in config.sets:
        dest = plan[(plan.experiment == s.name) & (plan.role == "destination")]
        for fold in (1, 2):
            n_test = dest[(dest.fold == fold) & (dest.side == "test")].n_samples.sum()
            c = confusion[
                (confusion.experiment == s.name)
                & (confusion.arm == "transfer")
                & (confusion.fold == fold)
                & (confusion.level == "frame")
            ]
            assert c["count"].sum() == n_test


def test_folds_are_subject_independent_in_every_phase(tiny_run):
    config, out, _ = tiny_run
    plan = pd.read_csv(out / "folds.csv")
    for (experiment, role, fold), part in plan.groupby(["experiment", "role", "fold"]):
        train = set(part[part.side == "train"].subject)
        test = set(part[part.side == "test"].subject)
        assert train and test and not train & test, (experiment, role, fold)
    for _key, part in plan.groupby(["experiment", "role"]):
        tests = part[part.side == "test"].groupby("fold").subject.apply(set)
        assert len(tests) == 2 and not tests[1] & tests[2]  # each subject tested once
    datasets = {n: load_dataset(config, n) for n in config.datasets}
    for job in plan_jobs(config):
        phases = (
            [source_phase(config, job, datasets[job.task])]
            if job.arm == "source"
            else build_phases(config, job, datasets)
        )
        for phase in phases:
            for rd, key in zip(phase.data, phase.keys, strict=True):
                if key.fold == 0:  # the final fit (and its source) trains on everyone
                    assert len(rd.y) == len(datasets[phase.task].y)
                    continue
                assert not set(rd.train_subjects) & set(rd.test_subjects), (job.job_id, key)
    # Same dataset: the source never trains on the destination fold's test subjects.
    s = next(x for x in config.sets if x.name == "jaffe->jaffe")
    job = next(j for j in plan_jobs(config) if j.experiment == s.name and j.arm == "transfer")
    (transfer,) = build_phases(config, job, datasets)
    for slot, dst in zip(job.slots, transfer.data, strict=True):
        src = source_phase(config, source_job(config, s, slot), datasets["jaffe"]).data[0]
        assert not set(src.train_subjects) & set(dst.test_subjects)
        assert set(src.train_subjects) == set(dst.train_subjects)


def test_models_are_saved_for_prediction(tiny_run):
    from pathnet_fer.formats.model_file import load_model

    config, out, _ = tiny_run
    models = sorted((out / "models").glob("*/*.pt"))
    sets = {s.name.replace("->", "-to-") for s in config.sets}
    assert {p.parent.name for p in models} == sets | {"sources"}  # + each source unit alone
    loaded = load_model(models[0])
    jaffe = load_dataset(config, "jaffe")
    proba = loaded.predict_proba(jaffe.faces.images[:5])
    assert proba.shape == (5, 6) and np.allclose(proba.sum(1), 1)
    assert loaded.metadata["arm"] in ("transfer", "scratch", "final")


def test_final_fit_model_saw_every_subject_and_says_so(tiny_run, capsys):
    from pathnet_fer.cli import main as cli_main
    from pathnet_fer.formats.model_file import load_model

    config, out, result = tiny_run
    assert "final" not in set(result.metrics.arm)  # no held-out figure: not in the tables
    for s in config.sets:
        path = out / "models" / s.name.replace("->", "-to-") / "final.pt"
        meta = load_model(path).metadata
        assert meta["final_fit"] is True and meta["test_subjects"] == []
        seen = {item["dataset"]: item for item in meta["trained_on"]}
        assert list(seen) == list(dict.fromkeys(s.links))
        for name in s.links:
            data = load_dataset(config, name)
            assert seen[name]["faces"] == len(data.y)
            assert seen[name]["subjects"] == len(set(data.subjects))
        # a fold model saw only its fold's training side, of the source and of each link
        fold_meta = load_model(path.with_name("transfer_best.pt")).metadata
        assert fold_meta["final_fit"] is False and fold_meta["test_subjects"]
        assert [item["dataset"] for item in fold_meta["trained_on"]] == s.links
        for item, name in zip(fold_meta["trained_on"], s.links, strict=True):
            assert 0 < item["faces"] < len(load_dataset(config, name).y)
        # it records its training faces' class frequencies (what --prior uniform divides out)
        last = np.asarray(load_dataset(config, s.links[-1]).y)
        freq = np.bincount(last, minlength=6) / len(last)
        assert load_model(path).class_prior == pytest.approx(freq)
    capsys.readouterr()
    assert cli_main(["predict", "--model", str(path), "--info"]) == 0
    assert '"trained_on"' in capsys.readouterr().out


def test_report_calibration_is_cross_fitted(tiny_run):
    _, out, _ = tiny_run
    table = pd.read_csv(out / "calibration.csv")
    sets = read_heldout(out)
    transfer = [s for s in sets if s["experiment"] == SAME and s["arm"] == "transfer"]
    assert sorted(int(s["fold"]) for s in transfer) == [1, 2]
    for s in transfer:
        other = next(o for o in transfer if o is not s)
        row = table[(table.experiment == SAME) & (table.arm == "transfer")
                    & (table.fold == int(s["fold"]))].iloc[0]  # fmt: skip
        # fit on the other fold only: its own faces would give another temperature
        assert row.temperature == pytest.approx(fit_temperature(other["proba"], other["label"]))
        assert row.temperature != pytest.approx(fit_temperature(s["proba"], s["label"]))
        assert row.n == len(s["label"])
        assert row.accuracy_raw == pytest.approx(np.mean(s["proba"].argmax(1) == s["label"]))
        assert row.confidence_calibrated == pytest.approx(
            apply_temperature(s["proba"], row.temperature).max(1).mean()
        )
    md = (out / "summary.md").read_text()
    assert "## Calibration (temperature scaling, cross-fitted)" in md
    tex = (out / "summary.tex").read_text()
    assert "\\subsection*{Calibration" in tex and tex.count("\\begin{tabular}") >= 2
    for name in (
        "calibration_ckplus48-to-ckplus48_ckplus48.png",
        "calibration_ckplus48-to-ckplus48_ckplus48.pdf",
    ):
        assert (out / "figures" / name).stat().st_size > 0


def test_final_model_carries_the_pooled_temperature_and_predict_applies_it(tiny_run):
    import torch

    from pathnet_fer.experiments.finalise import finalise
    from pathnet_fer.formats.model_file import load_model

    config, out, _ = tiny_run
    path = out / "models" / "ckplus48-to-ckplus48" / "final.pt"
    model = load_model(path)
    transfer = [s for s in read_heldout(out) if s["experiment"] == SAME and s["arm"] == "transfer"]
    pooled = fit_temperature(
        np.concatenate([s["proba"] for s in transfer]),
        np.concatenate([s["label"] for s in transfer]),
    )
    assert model.temperature == pytest.approx(pooled) and model.temperature != 1.0
    assert "folds [1, 2]" in model.metadata["calibration"]["fit_on"]
    crops = load_dataset(config, "ckplus48").faces.images[:16]
    with torch.inference_mode():
        logits = model.model(model.features(crops)).double().numpy()
    assert np.allclose(model.predict_proba(crops), _softmax(logits / pooled))
    assert not np.allclose(model.predict_proba(crops), _softmax(logits))
    # The job staged its file; the deploy step wrote models/ once, calibrated: every
    # deployed file has its staged twin, with the same weights.
    staged = load_model(out / "staged_models" / "ckplus48-to-ckplus48" / "final.pt")
    assert "calibration" not in staged.metadata and staged.temperature == 1.0
    a, b = staged.model.state_dict(), model.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    deployed = {p.relative_to(out / "models") for p in (out / "models").rglob("*.pt")}
    assert deployed == {
        p.relative_to(out / "staged_models") for p in (out / "staged_models").rglob("*.pt")
    }
    before = path.stat()
    finalise(out, config)  # a report rebuilt: same temperature, the file is left as it is
    after = path.stat()  # a rewrite would be a new file (temp file + rename): a new inode
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_rerun_with_other_settings_is_refused(tiny_run):
    _, out, _ = tiny_run
    with pytest.raises(RunDirError, match="evolution.generations: 6 .* != 7"):
        run_experiment(
            load_config(out / "config.yaml", ["evolution.generations=7"]),
            out,
            executor=InlineExecutor(),
            quiet=True,
        )


def test_missing_data_says_what_and_where(tmp_path):
    config = load_config("small", [f"data_root={tmp_path}"])
    with pytest.raises(DataMissingError) as err:
        check_data(config)
    assert str(tmp_path / "jaffe") in str(err.value) and "JAFFE" in str(err.value)
    assert str(tmp_path / "ckplus48") in str(err.value)


RESUME = [
    "sets=[{source: ckplus48, destination: ckplus48}]",
    "evolution.generations=8",
    "evolution.minibatches=6",
    "protocol.eval_every=4",
    "protocol.folds=2",
    "protocol.iterations=1",
    "executor.checkpoint_every=2",
    "executor.kind=inline",
    "logging.progress=false",
    "save_models=none",
]


def _command(out, *extra):
    args = [
        sys.executable,
        "-m",
        "pathnet_fer.experiments",
        "experiment",
        "small",
        "--out",
        str(out),
        "--quiet",
    ]
    for item in [*RESUME, *extra]:
        args += ["--set", item]
    return args


def test_killed_experiment_resumes_to_the_same_result(tmp_path, require_data):
    require_data("ckplus48")
    env = {**os.environ}
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # The uninterrupted run goes through worker processes, the other in-process: the
    # executor must not change any result.
    subprocess.run(
        _command(whole, "executor.kind=local", "executor.workers=2"),
        env=env,
        check=True,
        timeout=300,
    )
    proc = subprocess.Popen(_command(killed), env=env)
    deadline = time.monotonic() + 240
    # Kill once the first job has finished and the second has checkpointed mid-way.
    while time.monotonic() < deadline and proc.poll() is None:
        done = list((killed / "jobs").glob("*__*.json"))
        ckpts = list((killed / "checkpoints").glob("*/state.pt"))
        if done and len(ckpts) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (killed / "metrics.csv").exists()
    subprocess.run(_command(killed), env=env, check=True, timeout=300)
    log = (killed / "log.txt").read_text()
    finished = re.search(r"(\d+) jobs \((\d+) already finished\)", log.split("resuming")[1])
    assert finished and 1 <= int(finished[2]) < int(finished[1])
    a, b = read_metrics(whole), read_metrics(killed)
    a, b = (m[m.metric != "train_seconds"].reset_index(drop=True) for m in (a, b))
    pd.testing.assert_frame_equal(a, b)
    for name in ("confusion.csv", "folds.csv"):
        pd.testing.assert_frame_equal(pd.read_csv(whole / name), pd.read_csv(killed / name))


def test_chained_iterations_fix_each_destination_in_turn(tmp_path, require_data):
    from pathnet_fer.evolution import load_checkpoint

    require_data("ckplus48")
    config = load_config(
        "small",
        [
            "sets=[{source: ckplus48, destination: ckplus48}]",
            "protocol.iteration_mode=chained",
            "protocol.iterations=2",
            "evolution.generations=4",
            "evolution.minibatches=4",
            "protocol.eval_every=2",
            "protocol.folds=2",
            "logging.progress=false",
            "save_models=none",
            f"cache_dir={tmp_path / 'cache'}",
        ],
    )
    result = run_experiment(config, tmp_path / "run", executor=InlineExecutor(), quiet=True)
    metrics = result.metrics
    transfer = metrics[metrics.arm == "transfer"]
    assert sorted(transfer.iteration.unique()) == [1, 2]
    assert sorted(metrics[metrics.arm == "source"].iteration.unique()) == [1]
    assert sorted(metrics[metrics.arm == "scratch"].iteration.unique()) == [1, 2]
    assert "chained" in (tmp_path / "run" / "summary.md").read_text()
    net, _, _ = load_checkpoint(
        tmp_path / "run" / "checkpoints" / "ckplus48-to-ckplus48__transfer" / "state.pt"
    )
    # Source fixed, then iteration 1's destination; iteration 2 is the chain's last link.
    assert net.fixed_tasks == ["source", "transfer_it1"]
    assert net.runs == 2  # one chain per fold


def test_report_adds_baseline_arms(tiny_run, tmp_path):
    import shutil

    from pathnet_fer.experiments.__main__ import main
    from pathnet_fer.experiments.metrics_log import MetricsWriter

    _, out, _ = tiny_run
    run = tmp_path / "run"
    shutil.copytree(out, run)
    with MetricsWriter(tmp_path / "bl" / "metrics.csv") as log:
        for fold in (1, 2):
            log.log(
                experiment="ckplus48->jaffe",
                iteration=1,
                fold=fold,
                task="jaffe",
                arm="mlp-scratch",
                generation=5,
                split="test",
                level="frame",
                metric="accuracy",
                value=0.25 * fold,
            )
    assert main(["report", str(run), "--add", str(tmp_path / "bl")]) == 0
    summary = pd.read_csv(run / "summary.csv")
    row = summary[summary.arm == "mlp-scratch"].iloc[0]
    assert (row.experiment, row.n, row["mean"]) == ("ckplus48->jaffe", 2, pytest.approx(0.375))
    assert "mlp-scratch" in (run / "summary.md").read_text()
    assert "mlp-scratch" in set(read_metrics(run).arm)
    assert list((run / "parts").glob("added-*/metrics.csv"))  # kept for later rebuilds
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert main(["report", str(run), "--add", str(bad)]) == 2

    # A run directory copied without its parts/ keeps its own rows when arms are added.
    bare = tmp_path / "bare"
    shutil.copytree(out, bare, ignore=shutil.ignore_patterns("parts"))
    before = read_metrics(bare)
    assert main(["report", str(bare), "--add", str(tmp_path / "bl")]) == 0
    after = read_metrics(bare)
    assert set(after.arm) == set(before.arm) | {"mlp-scratch"}
    assert len(after) == len(before) + 2
