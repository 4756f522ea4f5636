"""Upper bounds on what a config may ask for, checked before anything runs or is written.

Every count that decides how much is allocated has a hard upper bound far above any
sensible study (``LIMITS``): iterations and folds make the planned runs, the population
the genotypes, the generations the per-generation history, the network's shape its
parameters, ``faces.size`` every crop. Without them ``protocol.iterations: 1000000000``
ended in a MemoryError traceback after the run directory existed, and
``evolution.population: 1000000000`` in jobs failing to allocate 240 GB. Within the
bounds, the memory of the largest job is estimated and compared with this machine's.

The YAML itself is bounded too: a config file is at most ``MAX_CONFIG_BYTES`` and
expands to at most ``MAX_CONFIG_VALUES`` values (``count_values``), so a "billion laughs"
of aliases is refused at once, under any key, instead of being expanded by the type
checks. Messages quote values through ``short_repr``: never an unbounded repr.
"""

from __future__ import annotations

import math
import os
import reprlib
from typing import Any

MAX_CONFIG_BYTES = 1 << 20
"""A config file is a few KB; a megabyte is no config."""
MAX_CONFIG_VALUES = 100_000
"""Values (mappings, lists, scalars) a config may hold once YAML aliases are expanded."""
MAX_CONFIG_DEPTH = 100
"""Nesting of mappings and lists (deeper would also overflow recursive checks)."""
MAX_EXTENDS_DEPTH = 32
"""Configs in one ``extends:`` chain (the shipped ones are at most 4 deep)."""

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

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 4
_REPR.maxlevel = 2


def short_repr(value: Any) -> str:
    """A repr of bounded length (nested and long values elided with ``...``)."""
    text = _REPR.repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _error(message: str) -> ValueError:
    """A ``ConfigError`` (imported here: config.py imports this module)."""
    from pathnet_fer.experiments.config import ConfigError

    return ConfigError(message)


def count_values(data: Any, where: str) -> int:
    """How many values ``data`` holds with aliases expanded, as every check will walk it;
    ``ConfigError`` as soon as that passes ``MAX_CONFIG_VALUES`` or nesting passes
    ``MAX_CONFIG_DEPTH`` (so a billion laughs costs ``MAX_CONFIG_VALUES`` steps)."""
    count = 0
    stack: list[tuple[Any, int]] = [(data, 0)]
    while stack:
        node, depth = stack.pop()
        count += 1
        if count > MAX_CONFIG_VALUES:
            raise _error(
                f"{where}: the config holds more than {MAX_CONFIG_VALUES:,} values once its "
                "YAML aliases (*name) are expanded; a config has a few hundred, so this is "
                "refused unread (an alias bomb?)"
            )
        if depth > MAX_CONFIG_DEPTH:
            raise _error(f"{where}: values nested more than {MAX_CONFIG_DEPTH} deep")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
            stack.extend((k, depth + 1) for k in node)
        elif isinstance(node, list | tuple):
            stack.extend((v, depth + 1) for v in node)
        elif isinstance(node, str) and len(node) > 10_000:
            raise _error(f"{where}: a string of {len(node):,} characters ({short_repr(node)})")
    return count


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
    from pathnet_fer.pathnet.config import PathNetConfig
    from pathnet_fer.pathnet.module_type import module_type_for

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
    from pathnet_fer.experiments.plan import plan_jobs

    e = config.executor
    total = machine_memory()
    if total is None or (e.kind == "dask" and (e.address or e.scheduler_file)):
        return
    runs = max((len(job.slots) for job in plan_jobs(config)), default=1)
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
