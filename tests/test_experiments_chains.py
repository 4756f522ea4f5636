"""Chains of datasets and shared sources, on real data: FER-2013 -> CK+48 -> JAFFE.

A small FER-2013 tree (real images, a few per class) stands in for the full set so the
study runs in seconds; everything else is the real pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fixture_trees import fer_subset
from pathnet_fer.experiments.config import ConfigError
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.executor import InlineExecutor
from pathnet_fer.experiments.job_plan import plan_jobs
from pathnet_fer.experiments.metrics_log import read_metrics
from pathnet_fer.experiments.runner import run_experiment


def chain_settings(fer: Path, cache: Path, *extra: str) -> list[str]:
    return [
        f"datasets.fer2013={{adapter: fer2013, root: {fer}, folds: fixed}}",
        "sets=[{chain: [fer2013, ckplus48, jaffe]}]",
        "faces.size=16",
        "evolution.generations=4",
        "evolution.minibatches=4",
        "protocol.eval_every=2",
        "protocol.folds=2",
        "protocol.iterations=2",
        "logging.progress=false",
        f"cache_dir={cache}",
        *extra,
    ]


@pytest.fixture(scope="module")
def chain_run(tmp_path_factory, require_data):
    for name in ("fer2013", "ckplus48", "jaffe"):
        require_data(name)
    base = tmp_path_factory.mktemp("chain")
    fer = fer_subset(require_data("fer2013"), base / "fer", train=25, test=8)
    cache = tmp_path_factory.getbasetemp() / "cache"
    config = load_config("small", chain_settings(fer, cache))
    result = run_experiment(config, base / "run", executor=InlineExecutor(), quiet=True)
    return config, base, fer, cache, result


def _records(run: Path) -> dict[str, dict]:
    return {
        p.stem: json.loads(p.read_text()) for p in (run / "jobs").glob("*.json") if "__" in p.stem
    }


def test_the_source_is_trained_once_per_iteration_for_every_fold(chain_run):
    config, base, *_ = chain_run
    jobs = plan_jobs(config)
    sources = [j for j in jobs if j.arm == "source"]
    # FER-2013's fixed split: one source per iteration, shared by both destination folds.
    assert sorted(j.job_id for j in sources) == [
        "source__fer2013__fold1__it1",
        "source__fer2013__fold1__it2",
    ]
    (transfer,) = [j for j in jobs if j.arm == "transfer"]
    assert set(transfer.after) == {j.job_id for j in sources} and len(transfer.slots) == 4
    assert jobs.index(transfer) > max(jobs.index(j) for j in sources)
    records = _records(base / "run")
    assert all(records[j.job_id]["reused"] == "" for j in sources)  # trained here
    assert len({records[j.job_id]["key"] for j in sources}) == 2
    from pathnet_fer.formats.model_file import load_model

    for j in sources:  # each source is also a model of its own (the zero-shot model)
        model = load_model(base / "run" / "models" / "sources" / f"{j.job_id}.pt")
        assert model.metadata["source_key"] == records[j.job_id]["key"]
        assert model.metadata["trained_on"][0]["dataset"] == "fer2013"
    # The deployed model of the chain saw every link: FER-2013's training split (the same
    # source unit as iteration 1's: not trained again), all of CK+48, all of JAFFE.
    final = load_model(base / "run" / "models" / "fer2013-to-ckplus48-to-jaffe" / "final.pt")
    assert [t["dataset"] for t in final.metadata["trained_on"]] == ["fer2013", "ckplus48", "jaffe"]
    assert records["fer2013-to-ckplus48-to-jaffe__final"]["after"] == [sources[0].job_id]
    metrics = read_metrics(base / "run")
    src = metrics[(metrics.arm == "source") & (metrics.metric != "forgetting")]
    assert set(src.task) == {"fer2013"} and set(src.fold) == {1}
    assert set(src.iteration) == {1, 2}


def test_every_link_has_transfer_scratch_and_zero_shot_rows(chain_run):
    config, base, *_ = chain_run
    metrics = read_metrics(base / "run")
    final = metrics[(metrics.split == "test") & (metrics.level == "frame")]
    acc = final[final.metric == "accuracy"]
    for arm in ("transfer", "scratch", "zero-shot"):
        rows = acc[acc.arm == arm]
        assert set(rows.task) == {"ckplus48", "jaffe"}, arm
        for task in ("ckplus48", "jaffe"):
            runs = rows[rows.task == task][["iteration", "fold"]].drop_duplicates()
            assert len(runs) == 4, (arm, task)
    paired = pd.read_csv(base / "run" / "paired_tests.csv")
    first = paired[(paired.metric == "accuracy") & (paired.level == "frame")]
    assert sorted(first.task) == ["ckplus48", "jaffe"] and (first.n_folds == 2).all()
    text = (base / "run" / "summary.md").read_text()
    assert "| zero-shot | jaffe |" in text and "forgetting" in text
    plan = pd.read_csv(base / "run" / "folds.csv")
    assert list(dict.fromkeys(plan.role)) == ["source", "link2", "destination"]


def test_earlier_links_are_not_forgotten_bit_for_bit(chain_run):
    from pathnet_fer.baselines.sgd_training import torch_threads
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.evolution import load_checkpoint
    from pathnet_fer.experiments.phases import link_rows, source_rows
    from pathnet_fer.experiments.plan import set_named, source_job
    from pathnet_fer.experiments.source_store import load_artifact
    from pathnet_fer.experiments.sources import FinishedTask
    from pathnet_fer.pathnet import PathNet

    config, base, *_ = chain_run
    run = base / "run"
    metrics = read_metrics(run)
    forgetting = metrics[metrics.metric == "forgetting"]
    # Link 1 (the source) and link 2 (CK+48), in each of the 4 transfer runs; not the last.
    assert sorted(forgetting.groupby(["arm", "task"]).size().items()) == [
        (("source", "fer2013"), 4),
        (("transfer", "ckplus48"), 4),
    ]
    assert (forgetting.value == 0).all()

    (job,) = [j for j in plan_jobs(config) if j.arm == "transfer"]
    net, _, extra = load_checkpoint(run / "checkpoints" / job.job_id / "state.pt")
    (ck_task,) = [FinishedTask.from_state(f) for f in extra["finished"]]
    s = set_named(config, job.experiment)
    data = {n: load_dataset(config, n) for n in s.links}
    records = _records(run)
    for r, slot in enumerate(job.slots):
        unit = source_job(config, s, slot)
        artifact = load_artifact(run / "sources" / f"{records[unit.job_id]['key']}.pt")
        donor = PathNet.from_state(artifact["net"])
        source = FinishedTask.from_state(artifact["task"])
        # The source's modules are bit-identical after the whole chain ...
        fixed = artifact["net"]["fixed"][0]
        for layer in range(net.config.layers):
            mask = fixed[layer]
            assert torch.equal(net.weights[layer][r][mask], donor.weights[layer][0][mask])
            assert torch.equal(net.biases[layer][r][mask], donor.biases[layer][0][mask])
        # ... and the union of fixed paths stays fixed: source and CK+48 link.
        assert bool(net.fixed[r][fixed].all())
        ck_path = torch.zeros_like(fixed).scatter_(1, ck_task.best_paths[r].long(), True)
        assert bool(net.fixed[r][ck_path].all()) and int(net.fixed[r].sum()) > int(fixed.sum())
        # Every earlier task predicts exactly as at the end of its own link. Bit-identical
        # parameters (above) give bit-identical outputs only through the same CPU kernels,
        # so these run with the thread count the jobs ran with (``executor.threads``,
        # which recorded ``test_accuracy``), not the test process's default.
        rows = source_rows(config, unit, data["fer2013"])
        ck = link_rows(config, data["ckplus48"], slot.fold)
        with torch_threads(config.executor.threads):
            after = net.predict_proba(rows.test_x, source.stack([source] * net.runs), run=r)
            before = donor.predict_proba(rows.test_x, source, run=0)
            acc = float((net.predict(ck.test_x, ck_task, run=r).numpy() == ck.test_y).mean())
        assert torch.equal(after, before)
        assert acc == pytest.approx(ck_task.test_accuracy[r], abs=0)
        # with any thread count, the same outputs within float32 rounding
        after = net.predict_proba(rows.test_x, source.stack([source] * net.runs), run=r)
        torch.testing.assert_close(after, before, rtol=0, atol=1e-6)


def test_zero_shot_maps_source_classes_by_emotion_name():
    from pathnet_fer.experiments.after_chain import mapped_proba

    proba = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    out = mapped_proba(proba, ("anger", "happy", "neutral"), ("happy", "anger", "contempt"))
    # neutral is dropped (renormalised over shared classes); contempt is never predicted
    assert np.allclose(out, [[6 / 7, 1 / 7, 0], [2 / 7, 5 / 7, 0]])
    with pytest.raises(ValueError, match="share no emotion"):
        mapped_proba(proba, ("anger", "happy", "neutral"), ("contempt", "surprise"))


def test_a_second_study_reuses_the_source_and_a_changed_setting_retrains(chain_run):
    config, base, fer, cache, first = chain_run
    again = run_experiment(
        load_config("small", chain_settings(fer, cache)),
        base / "again",
        executor=InlineExecutor(),
        quiet=True,
    )
    records = _records(base / "again")
    sources = {k: v for k, v in records.items() if k.startswith("source__")}
    assert len(sources) == 2 and all(r["reused"] == "store" for r in sources.values())
    assert all(not r["phases"] for r in sources.values())  # nothing evolved
    a, b = (
        m[m.metric != "train_seconds"].reset_index(drop=True)
        for m in (first.metrics, again.metrics)
    )
    pd.testing.assert_frame_equal(a, b)

    changed = run_experiment(
        load_config("small", chain_settings(fer, cache, "protocol.source_generations=5")),
        base / "changed",
        executor=InlineExecutor(),
        quiet=True,
    )
    records = _records(base / "changed")
    retrained = [r for k, r in records.items() if k.startswith("source__")]
    assert len(retrained) == 2 and all(r["reused"] == "" for r in retrained)
    old_keys = {r["key"] for r in sources.values()}
    assert not old_keys & {r["key"] for r in retrained}
    src = changed.metrics[(changed.metrics.arm == "source") & (changed.metrics.split == "train")]
    assert src.generation.max() == 5


def test_chain_settings_are_checked_up_front():
    with pytest.raises(ConfigError, match="chain needs at least two"):
        load_config("small", ["sets=[{chain: [jaffe]}]"])
    with pytest.raises(ConfigError, match="disagrees with chain"):
        load_config("small", ["sets=[{chain: [jaffe, ckplus48], source: ckplus48}]"])
    with pytest.raises(ConfigError, match="chain\\[1\\]: dataset 'nope'"):
        load_config("small", ["sets=[{chain: [jaffe, nope]}]"])
    with pytest.raises(ConfigError, match="two-link sets only"):
        load_config(
            "small",
            ["sets=[{chain: [jaffe, ckplus48, jaffe]}]", "protocol.iteration_mode=chained"],
        )
    config = load_config("small", ["sets=[{source: jaffe, destination: ckplus48}]"])
    assert config.sets[0].chain == ["jaffe", "ckplus48"]
    assert config.sets[0].name == "jaffe->ckplus48"
