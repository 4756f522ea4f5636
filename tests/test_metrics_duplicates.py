"""Two writers on one run leave duplicate keys: every metrics reader refuses them."""

from __future__ import annotations

import pytest

from pathnet_fer.experiments.metrics_log import MetricsWriter, merge_metric_files, read_metrics

ROW = dict(
    iteration=1,
    fold=1,
    task="jaffe",
    arm="transfer",
    split="test",
    level="frame",
    metric="accuracy",
)


def _write(path, generations, value=0.5) -> None:
    with MetricsWriter(path, experiment="ckplus48->jaffe") as log:
        for g in generations:
            log.log(**ROW, generation=g, value=value)


def test_duplicate_rows_in_one_file_are_refused(tmp_path) -> None:
    path = tmp_path / "metrics.csv"
    _write(path, [1, 2, 3])
    assert len(read_metrics(path)) == 3
    _write(path, [3], value=0.7)  # a second writer appends generation 3 again
    with pytest.raises(ValueError, match="2 rows share their key.*two commands wrote one run"):
        read_metrics(path)


def test_duplicates_across_job_parts_are_refused(tmp_path) -> None:
    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    _write(a, [1, 2])
    _write(b, [2, 3])
    with pytest.raises(ValueError, match="2 metrics files: 2 rows share their key"):
        merge_metric_files([a, b], tmp_path / "metrics.csv")
    assert not (tmp_path / "metrics.csv").exists()
    _write(b.with_name("c.csv"), [3])
    assert len(merge_metric_files([a, tmp_path / "c.csv"], tmp_path / "metrics.csv")) == 3


def test_a_baseline_run_killed_mid_write_is_redone_without_duplicates(tmp_path) -> None:
    from pathnet_fer.baselines.run_record import done_runs

    path = tmp_path / "metrics.csv"
    with MetricsWriter(path, experiment="ckplus48->jaffe") as log:
        for arm, splits in (("mlp-scratch", ("train", "test")), ("mlp-finetune", ("train",))):
            for split in splits:
                level = "minibatch" if split == "train" else "frame"
                log.log(
                    **{**ROW, "arm": arm, "split": split, "level": level}, generation=1, value=0.5
                )
    assert done_runs(path) == {("ckplus48->jaffe", 1, 1, "mlp-scratch")}
    assert set(read_metrics(path).arm) == {"mlp-scratch"}  # the unfinished run's rows dropped
    with MetricsWriter(path, experiment="ckplus48->jaffe") as log:  # the run is redone
        for split, level in (("train", "minibatch"), ("test", "frame")):
            log.log(**{**ROW, "arm": "mlp-finetune", "split": split, "level": level},
                    generation=1, value=0.6)  # fmt: skip
    assert len(read_metrics(path)) == 4  # every key once
