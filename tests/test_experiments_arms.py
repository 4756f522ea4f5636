"""The arms a study plans answer for themselves (experiments/arms.py)."""

from __future__ import annotations

import pytest

from pathnet_fer.experiments.arms import ARMS, FINAL, SCRATCH, SOURCE, TRANSFER, arm_of
from pathnet_fer.experiments.config_loading import load_config
from pathnet_fer.experiments.job_plan import plan_jobs


def test_every_planned_job_names_an_arm_that_says_how_it_runs() -> None:
    config = load_config("small", ["protocol.final_fit=true"])
    jobs = plan_jobs(config)
    assert {j.arm for j in jobs} == set(ARMS)
    for job in jobs:
        arm = arm_of(job.arm)
        assert arm.shared_unit == job.job_id.startswith("source__")
        assert arm.one_link == (job.task != "" and not arm.shared_unit)  # scratch: its link
        assert arm.from_source == bool(job.after)  # a chain waits for its source units
    assert [a.output_dir for a in (SOURCE, TRANSFER, SCRATCH, FINAL)] == [
        "parts", "parts", "parts", "final"
    ]  # fmt: skip
    assert [a.chains_folds for a in (SOURCE, TRANSFER, SCRATCH, FINAL)] == [
        False, True, False, False
    ]  # fmt: skip


def test_an_unknown_arm_is_one_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown arm 'resnet18-head'"):
        arm_of("resnet18-head")
