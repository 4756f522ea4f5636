"""Several seeds of the recipe as one model: a heads model whose heads are the seeds.

Why: single draws of the shipped recipe differ by about 0.01 on FER-2013 test and by
several points on the posed sets, and their errors differ: the mean of three draws'
probabilities was above each of them on FER-2013 test (docs/results-fer2013.md, "Three
seeds as one model", where whether it pays as shipped is measured).
The file is an ordinary ``pathnet-heads`` model (pathnet/heads_model.py): each head is one
seed's path and readout as that seed's own file ships it (its temperature, its mirror
averaging, its training faces' class frequencies to divide out), the combination is the
mean of the heads' calibrated probabilities with equal weights, and ``--head seedN``
answers as one seed alone. Nothing is fitted on top of the members.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pathnet_fer.formats.class_prior import HEAD_PRIORS
from pathnet_fer.formats.loaded_model import MIRROR_KEY, LoadedModel
from pathnet_fer.pathnet.heads_model import HeadsModel

COMBINATION = (
    "mean of the seeds' calibrated probabilities, equal weights; each seed mirror-averaged "
    "and its own training prior divided out as its own file does (pretrained/seeds.py)"
)
_MEMBER_KEYS = ("job", "source_key", "test_accuracy", "calibration", "trained_on")
"""What each head keeps of its member file's metadata (the rest is the combined file's)."""


def seed_name(seed: int) -> str:
    """A head's name: the seed that trained it (``--head seed1``)."""
    return f"seed{int(seed)}"


def combine_seeds(
    members: Sequence[LoadedModel], seeds: Sequence[int], prior: str
) -> tuple[HeadsModel, dict[str, Any]]:
    """One heads model of ``members`` (the built files of ``seeds``, in order) and its file
    metadata, assuming class ``prior`` (``train`` or ``uniform``) by default; a
    ``ValueError`` naming the member that does not fit with the first (another dataset,
    classes, input, face settings or mirror setting, or no calibration or class prior)."""
    if len(members) != len(seeds) or len(members) < 2:
        raise ValueError(f"one member file per seed, at least two: {len(members)} for {seeds}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must differ: {list(seeds)}")
    first = members[0]
    for seed, m in zip(seeds, members, strict=True):
        where = f"the member of seed {seed} ({m.path or '?'})"
        for what, a, b in (
            ("dataset", m.dataset, first.dataset),
            ("classes", m.class_names, first.class_names),
            ("input", m.input.describe(), first.input.describe()),
            ("face settings", m.face_settings.to_dict(), first.face_settings.to_dict()),
            ("mirror setting", m.mirror, first.mirror),
        ):
            if a != b:
                raise ValueError(f"{where}: its {what} {a!r} differ from the first's {b!r}")
        if "calibration" not in m.metadata or m.class_prior is None:
            raise ValueError(f"{where} lacks a calibration or a recorded class prior")
    names = [seed_name(s) for s in seeds]
    heads = HeadsModel(
        [m.model for m in members],
        names,
        [list(m.class_names) for m in members],
        temperatures=[m.temperature for m in members],
        descriptions=[
            {"dataset": m.dataset, "seed": int(s)}
            | {k: m.metadata[k] for k in _MEMBER_KEYS if k in m.metadata}
            for s, m in zip(seeds, members, strict=True)
        ],
    )
    inference = {
        "mirror": first.mirror,
        "prior": prior,
        HEAD_PRIORS: {n: list(m.class_prior) for n, m in zip(names, members, strict=True)},
    }
    metadata = {
        "arm": "source",
        "seeds": [int(s) for s in seeds],
        "heads": names,
        "combination": COMBINATION,
        "trained_on": first.metadata.get("trained_on"),
        "held_out_splits": first.metadata.get("held_out_splits"),
        MIRROR_KEY: inference,
    }
    return heads, {k: v for k, v in metadata.items() if v is not None}
