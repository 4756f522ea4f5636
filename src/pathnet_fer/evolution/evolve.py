"""``evolve``: learn one task on a PathNet by binary-tournament evolution, R runs at once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable

import torch

from pathnet_fer.evolution.augment import draw_warps
from pathnet_fer.evolution.config import RESUMABLE_FIELDS, EvolutionConfig
from pathnet_fer.evolution.data import PreparedData, TaskData, prepare_data
from pathnet_fer.evolution.evaluate import path_accuracy
from pathnet_fer.evolution.events import GenerationEvent
from pathnet_fer.evolution.sampling import MinibatchStreams
from pathnet_fer.evolution.task import Task
from pathnet_fer.evolution.tournament import pick_pairs, pick_winners, replace_losers
from pathnet_fer.pathnet.config import config_differences
from pathnet_fer.pathnet.genotype import random_genotypes
from pathnet_fer.pathnet.sgd_recipe import PLAIN, SgdRecipe
from pathnet_fer.pathnet.supernet import PathNet

Callback = Callable[[GenerationEvent], None]


class TrainingDivergedError(FloatingPointError):
    """A path's training loss became NaN or infinite: every later figure would be noise."""


def evolve(
    net: PathNet,
    data: TaskData | list[TaskData],
    n_classes: int | None = None,
    config: EvolutionConfig | None = None,
    seed: int = 0,
    callbacks: Iterable[Callback] = (),
    name: str = "task",
    task: Task | None = None,
) -> Task:
    """Evolve a population of paths on ``data`` for ``config.generations`` generations.

    A new task gets a random population and a fresh readout; ``task=`` continues a task
    (e.g. loaded from a checkpoint) up to ``config.generations`` with exactly the result
    of an uninterrupted run. ``data``: one TaskData for all runs or one per run.
    At the end the best path of each run is chosen (``task.best_paths``): the member of
    the FINAL population with the highest accuracy in a fresh evaluation pass (no
    training) on the selection data - not the best ever seen.
    """
    if not isinstance(net, PathNet):
        raise TypeError(f"net must be a PathNet, got {type(net).__name__}")
    c = net.config
    if task is None:
        if n_classes is None:
            raise ValueError("n_classes is required for a new task")
        config = config or EvolutionConfig()
        prepared = prepare_data(
            data, net.runs, c.input_dim, n_classes, net.device, need_val=config.fitness == "heldout"
        )
        task = _new_task(net, prepared, n_classes, config, seed, name)
    else:
        prepared = _resume_checks(net, task, data, n_classes, config)
        config = task.config if config is None else config
        task.config = config
    task._net, task._data = net, prepared
    callbacks = list(callbacks)
    if task.finished and task.generation < config.generations:
        task.best_paths, task.best_fitness = None, None  # extending a finished task
    while task.generation < config.generations:
        event = _generation(net, task, prepared)
        for callback in callbacks:
            callback(event)
        if event.stop_requested:
            break
    if not task.finished:
        task.best_paths, task.best_fitness = task._reevaluate()
    task._data = None  # do not keep the training data (possibly on the GPU) alive
    return task


def _new_task(
    net: PathNet, data: PreparedData, n_classes: int, config: EvolutionConfig, seed: int, name: str
) -> Task:
    c = net.config
    gen = torch.Generator().manual_seed(int(seed))
    population = random_genotypes(
        (net.runs, config.population), c.layers, c.max_active, c.modules, gen
    )
    readout_w, readout_b = net.new_readout(n_classes)
    task = Task(
        name,
        n_classes,
        config,
        int(seed),
        population,
        readout_w,
        readout_b,
        gen,
        MinibatchStreams(data.sizes),
    )
    for run in range(net.runs):
        n = data.sizes[run]
        k = n if config.selection_samples is None else min(n, config.selection_samples)
        task.selection_rows.append(torch.randperm(n, generator=gen)[:k].sort().values)
    task.data_fingerprint = data.fingerprint
    return task


def _resume_checks(net: PathNet, task: Task, data, n_classes, config) -> PreparedData:
    if task.runs != net.runs:
        raise ValueError(f"task {task.name!r} has {task.runs} runs but the net has {net.runs}")
    if n_classes is not None and n_classes != task.n_classes:
        raise ValueError(
            f"task {task.name!r} has {task.n_classes} classes, got n_classes={n_classes}"
        )
    if config is not None:
        diff = [
            d
            for d in config_differences(task.config.to_dict(), config.to_dict())
            if d.split(":")[0] not in RESUMABLE_FIELDS
        ]
        if diff:
            raise ValueError(
                f"cannot continue task {task.name!r} with a different EvolutionConfig "
                f"(checkpoint != given): {'; '.join(diff)}"
            )
        if config.lr_schedule != "constant" and config.generations != task.config.generations:
            raise ValueError(
                f"cannot extend task {task.name!r} from {task.config.generations} to "
                f"{config.generations} generations: its {config.lr_schedule!r} learning-rate "
                "schedule spans the generations it was started with"
            )
    prepared = prepare_data(
        data,
        net.runs,
        net.config.input_dim,
        task.n_classes,
        net.device,
        need_val=task.config.fitness == "heldout",
    )
    for run, (old, new) in enumerate(zip(task.data_fingerprint, prepared.fingerprint, strict=True)):
        if old != new:
            diff = config_differences(old, new)
            raise ValueError(
                f"task {task.name!r}, run {run}: the data differs from the data the task "
                f"was started with (checkpoint != given): {'; '.join(diff)}"
            )
    return prepared


def _recipe(
    cfg: EvolutionConfig, data: PreparedData, shape: tuple[int, int, int], gen: torch.Generator
) -> SgdRecipe:
    """This generation's SGD recipe; augmentation warps drawn after the minibatch rows,
    and only when augmentation is on (the plain recipe draws nothing)."""
    soft = data.targets is not None
    bf16 = cfg.train_precision != "fp32"
    if not (
        cfg.momentum or cfg.weight_decay or cfg.label_smoothing or cfg.augments or soft or bf16
    ):
        return PLAIN
    return SgdRecipe(
        momentum=cfg.momentum,
        weight_decay=cfg.weight_decay,
        label_smoothing=cfg.label_smoothing,
        targets=data.targets,
        warps=draw_warps(cfg, shape, gen) if cfg.augments else None,
        precision=cfg.train_precision,
    )


def _paths_of(recipe: SgdRecipe, sel: torch.Tensor) -> SgdRecipe:
    """The recipe of the paths ``sel`` of a generation (sequential pair training)."""
    if recipe.warps is None:
        return recipe
    return dataclasses.replace(recipe, warps=recipe.warps[:, sel])


def _generation(net: PathNet, task: Task, data: PreparedData) -> GenerationEvent:
    """One tournament per run: pick two, train both, fitness, loser := mutated winner."""
    start = time.perf_counter()
    cfg, c = task.config, net.config
    runs = net.runs
    gen = task.generator
    pairs = pick_pairs(runs, cfg.population, gen)  # (R, 2)
    paths = task.population[torch.arange(runs).unsqueeze(1), pairs]  # (R, 2, L, N)
    per_path = cfg.minibatches * cfg.batch_size
    rows = torch.empty(runs, 2, per_path, dtype=torch.int64)
    for run in range(runs):
        for slot in range(2):
            rows[run, slot] = task.streams.take(run, per_path, gen) + data.offsets[run]
    # (S, R*2, B): step-major, one minibatch per path per step.
    batch_index = rows.view(runs * 2, cfg.minibatches, cfg.batch_size).transpose(0, 1).contiguous()
    batch_index = batch_index.to(net.device)
    run_of_path = torch.arange(runs).repeat_interleave(2)
    flat_paths = paths.reshape(runs * 2, c.layers, c.max_active)
    lr = cfg.lr_at(task.generation)
    recipe = _recipe(cfg, data, (cfg.minibatches, runs * 2, cfg.batch_size), gen)
    if cfg.pair_training == "batched":
        correct, loss = net.train_paths(
            run_of_path,
            flat_paths,
            task.readout_weight,
            task.readout_bias,
            data.x,
            data.y,
            batch_index,
            lr,
            cfg.shared_update,
            recipe,
        )
        correct, loss = correct.view(runs, 2), loss.view(runs, 2)
    else:
        parts = []
        for slot in range(2):
            sel = torch.arange(runs) * 2 + slot
            parts.append(
                net.train_paths(
                    run_of_path[sel],
                    flat_paths[sel],
                    task.readout_weight,
                    task.readout_bias,
                    data.x,
                    data.y,
                    batch_index[:, sel.to(net.device)],
                    lr,
                    cfg.shared_update,
                    _paths_of(recipe, sel),
                )
            )
        correct = torch.stack([p[0] for p in parts], 1)
        loss = torch.stack([p[1] for p in parts], 1)
    seen = float(per_path)
    train_acc = correct.cpu().double().div(seen).float()
    mean_loss = loss.cpu().double().div(seen).float()
    if not bool(torch.isfinite(mean_loss).all()):
        bad = sorted({int(r) for r in torch.nonzero(~torch.isfinite(mean_loss))[:, 0]})
        raise TrainingDivergedError(
            f"task {task.name!r} diverged at generation {task.generation + 1}: the training "
            f"loss of run(s) {bad} is not finite; lower evolution.lr (with momentum m the "
            f"effective step is lr / (1 - m): now {cfg.lr_at(task.generation) / (1 - cfg.momentum):g})"
        )
    if cfg.fitness == "heldout":
        fitness = torch.stack(
            [
                path_accuracy(net, task, run, paths[run], data.x_val[run], data.y_val[run])
                for run in range(runs)
            ]
        )
    else:
        fitness = train_acc
    winner = pick_winners(fitness)
    winners = replace_losers(
        task.population,
        task.member_fitness,
        pairs,
        winner,
        fitness,
        c.modules,
        gen,
        cfg.effective_mutation_rate(c.layers, c.max_active),
        cfg.mutation_shift,
        cfg.mutation_include_zero,
        cfg.mutation_boundary,
    )
    task.generation += 1
    for key, value in (
        ("pairs", pairs),
        ("fitness", fitness),
        ("loss", mean_loss),
        ("train_accuracy", train_acc),
        ("winner", winner),
        ("winner_genotypes", winners),
    ):
        task.history[key].append(value)
    seconds = time.perf_counter() - start
    task.elapsed_seconds += seconds
    return GenerationEvent(
        generation=task.generation,
        task=task,
        net=net,
        pairs=pairs,
        paths=paths,
        fitness=fitness,
        loss=mean_loss,
        train_accuracy=train_acc,
        winner=winner,
        winner_genotypes=winners,
        seconds=seconds,
    )
