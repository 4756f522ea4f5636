"""After a chain: what the later links did to the earlier ones (forgetting: held-out
accuracy at a link's end minus after the chain; frozen paths make it exactly 0) and the
source applied with no destination training (zero-shot: classes mapped by emotion name).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pathnet_fer.datasets.loading import LoadedDataset
from pathnet_fer.experiments.config import ExperimentConfig
from pathnet_fer.experiments.loggers import CSVLogger, RunKey
from pathnet_fer.experiments.phases import Phase, source_rows
from pathnet_fer.experiments.sources import FinishedTask, LoadedSources
from pathnet_fer.scoring.metrics import evaluate_proba


# --------------------------------------------------------------------------- after a chain
def mapped_proba(proba: np.ndarray, source: tuple[str, ...], dest: tuple[str, ...]) -> np.ndarray:
    """Source-class probabilities as destination-class ones, matched by emotion name and
    renormalised over the shared classes; a destination class the source lacks gets 0
    (it is never predicted, so its samples count as wrong)."""
    index = {name: i for i, name in enumerate(source)}
    out = np.zeros((proba.shape[0], len(dest)), dtype=np.float64)
    for j, name in enumerate(dest):
        if name in index:
            out[:, j] = proba[:, index[name]]
    total = out.sum(1, keepdims=True)
    if not np.all(total > 0):
        raise ValueError(f"source classes {source} share no emotion with {dest}")
    return out / total


def after_chain_rows(
    config: ExperimentConfig,
    net,
    source: LoadedSources,
    finished: list[FinishedTask],
    phases: list[Phase],
    datasets: dict[str, LoadedDataset],
    log: CSVLogger,
) -> None:
    """Rows (to ``log``) measured once the whole chain is done: ``forgetting`` of every earlier link
    (in that link's own row: ``source`` for link 1, ``transfer`` for later ones, keyed
    by the transfer run), and arm ``zero-shot``: the source path and readout alone on
    each later link's held-out faces."""
    vote = config.protocol.clip_vote

    src = source.task.to(net.device)
    unit_rows = {u.job_id: source_rows(config, u, datasets[u.task]) for u in source.units}
    judged: list[tuple[FinishedTask, list[RunKey], list[Any]]] = [
        (
            src,
            [RunKey(k.experiment, k.iteration, k.fold, u.task, "source")
             for k, u in zip(phases[0].keys, source.units, strict=True)],
            [unit_rows[u.job_id] for u in source.units],
        )
    ]  # fmt: skip
    fixed_phases = [ph for ph in phases if ph.fix_after]
    for f, ph in zip(finished, fixed_phases, strict=True):
        judged.append((f.to(net.device), ph.keys, ph.data))
    generation = phases[-1].generations
    for f, keys, data in judged:
        for r, (key, rd) in enumerate(zip(keys, data, strict=True)):
            proba = net.predict_proba(rd.test_x, f, run=r).cpu().numpy()
            acc = float(np.mean(proba.argmax(1) == rd.test_y))
            log.log_values(
                key, generation, "test", "frame", {"forgetting": f.test_accuracy[r] - acc}
            )
    zero_shot = phases if config.protocol.iteration_mode == "repeat" else phases[:1]
    for ph in zero_shot:
        for r, (key, rd) in enumerate(zip(ph.keys, ph.data, strict=True)):
            proba = net.predict_proba(rd.test_x, src, run=r).cpu().numpy()
            mapped = mapped_proba(proba, src.class_names, ph.class_names)
            ev = evaluate_proba(mapped, rd.test_y, rd.test_clips, ph.n_classes, vote)
            k = RunKey(key.experiment, key.iteration, key.fold, key.task, "zero-shot")
            for level, values in ev.by_level().items():
                log.log_values(k, 0, "test", level, values)
    log.flush()
