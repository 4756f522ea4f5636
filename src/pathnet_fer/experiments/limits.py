"""Upper bounds on what a config may ask for, checked before anything runs or is written.

Every count that decides how much is allocated has a hard upper bound far above any
sensible study (``LIMITS``): iterations and folds make the planned runs, the population
the genotypes, the generations the per-generation history, the network's shape its
parameters, ``faces.size`` every crop. Without them ``protocol.iterations: 1000000000``
ended in a MemoryError traceback after the run directory existed, and
``evolution.population: 1000000000`` in jobs failing to allocate 240 GB. Within the
bounds, the memory of the largest job is estimated and compared with this machine's.

The YAML itself is bounded too, before this runs (``yaml_config.bounds``).
"""

from __future__ import annotations

import math
import os
from typing import Any

from pathnet_fer.experiments.plan import plan_batch_jobs
from pathnet_fer.pathnet.config import PathNetConfig
from pathnet_fer.pathnet.module_kinds import module_type_for
from pathnet_fer.yaml_config.bounds import short_repr
from pathnet_fer.yaml_config.errors import ConfigError

LIMITS: dict[str, int] = {
    "protocol.iterations": 1_000,  # the paper: 4
    "protocol.folds": 100,  # the paper: 6; more folds than subjects is refused later
    "datasets.*.n_folds": 100,
    "protocol.source_generations": 1_000_000,
    "protocol.destination_generations": 1_000_000,
    "evolution.generations": 1_000_000,  # the paper: 1000; history grows per generation
    "evolution.population": 10_000,  # the paper: 64; 2 members meet per generation
    "evolution.minibatches": 100_000,
    "evolution.batch_size": 100_000,
    "evolution.selection_samples": 10_000_000,
    "faces.size": 1_024,  # pixels per side: FER-2013 at 1024 grey is 31 GB of crops
    "datasets.*.faces.size": 1_024,
    "pathnet.layers": 64,
    "pathnet.modules": 1_024,
    "pathnet.units": 65_536,
    "pathnet.max_active": 1_024,
    "pathnet.kernel": 63,
    "pathnet.channels": 4_096,
    "executor.workers": 4_096,
    "executor.threads": 1_024,
    "executor.checkpoint_every": 1_000_000,
}


def _error(message: str) -> ValueError:
    return ConfigError(message)


def _over(key: str, value: Any, limit: int) -> ValueError:
    return _error(
        f"{key}: {short_repr(value)} is over the limit of {limit:,} "
        "(experiments/limits.py); nothing was run or written"
    )


def check_limits(config: Any) -> None:
    """Refuse (``ConfigError``) any setting over ``LIMITS``; runs on a type-checked config
    before anything sized by these settings (plans, networks) is built."""

    def check(key: str, value: Any) -> None:
        limit = LIMITS[key if key in LIMITS else _pattern(key)]
        values = value if isinstance(value, list | tuple) else [value]
        for v in values:
            if isinstance(v, int | float) and not isinstance(v, bool) and v > limit:
                raise _over(key, v, limit)

    p = config.protocol
    for name in ("iterations", "folds", "source_generations", "destination_generations"):
        check(f"protocol.{name}", getattr(p, name))
    for section in ("evolution", "pathnet", "faces"):
        values = getattr(config, section) or {}
        for name, value in values.items():
            if f"{section}.{name}" in LIMITS:
                check(f"{section}.{name}", value)
    for name, spec in config.datasets.items():
        check(f"datasets.{name}.n_folds", spec.n_folds)
        if "size" in (spec.faces or {}):
            check(f"datasets.{name}.faces.size", spec.faces["size"])
    for name in ("workers", "threads", "checkpoint_every"):
        check(f"executor.{name}", getattr(config.executor, name))


def _pattern(key: str) -> str:
    parts = key.split(".")
    return ".".join([parts[0], "*", *parts[2:]])


def machine_memory() -> int | None:
    """This machine's physical memory in bytes (None where unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def job_memory(config: Any, input_dim: int, image_shape: Any, runs: int) -> dict[str, int]:
    """Bytes a job of ``runs`` batched runs holds, by part (an estimate from the settings:
    genotypes as drawn, network parameters with their gradients and update copies, the
    per-generation history); the data comes on top."""

    shape = {"image_shape": image_shape} if image_shape else {}
    net = PathNetConfig(input_dim=input_dim, **shape, **config.pathnet)
    kind = module_type_for(net)
    per_run = sum(
        net.modules * (math.prod(kind.weight_shape(layer)) + math.prod(kind.bias_shape(layer)))
        for layer in range(net.layers)
    )
    population = int(config.evolution["population"])
    generations = max(config.generations("source"), config.generations("destination"))
    return {
        # random draws (float32) and their argsort (int64) over every module of a layer
        "genotypes": runs * population * net.layers * net.modules * 12,
        "network": runs * per_run * 4 * 3,
        "history": runs * generations * (net.layers * net.max_active * 8 + 64),
    }


def check_memory(config: Any, inputs: dict[str, tuple[int, Any]]) -> None:
    """Refuse (``ConfigError``) settings whose largest job would not fit in this machine's
    memory. ``inputs``: dataset -> (input width, image shape or None). Skipped when the
    jobs run on a cluster's workers (their memory is not this machine's)."""
    e = config.executor
    total = machine_memory()
    if total is None or (e.kind == "dask" and (e.address or e.scheduler_file)):
        return
    # runs batched in one PathNet: a job's slots; under executor.cut every unit runs alone
    batched = plan_batch_jobs(config) if e.cut is None else []
    runs = max((len(job.slots) for job in batched), default=1)
    widest = max(inputs.values(), key=lambda item: item[0], default=None)
    if widest is None:
        return
    parts = job_memory(config, widest[0], widest[1], runs)
    need = sum(parts.values())
    if need > total:
        detail = ", ".join(f"{k} {_gb(v)}" for k, v in parts.items())
        raise _error(
            f"the largest job would need about {_gb(need)} ({detail}; {runs} batched runs, "
            f"population {config.evolution['population']}) but this machine has "
            f"{_gb(total)}: lower evolution.population, the network (pathnet.*), "
            "protocol.iterations or folds, or split jobs with executor.cut=run"
        )


def _gb(n: int) -> str:
    return f"{n / 2**30:,.1f} GiB"
