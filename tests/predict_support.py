"""A real trained model for the predict tests: a short PathNet evolution on CK+48.

Trained once per test process (the predict test files share it) through the public
API: faces.preprocess_dataset -> PathNet -> evolve -> predict.save_model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pathnet_fer.formats.model_file import save_path_model
from pathnet_fer.paths import data_root

GENERATIONS = 20
MINIBATCHES = 50  # the paper's 50 minibatches; a larger learning rate than its 0.02:
LEARNING_RATE = 0.05  # a real model that has learned something, in a few seconds
_CACHE: dict[str, TrainedModel] = {}


@dataclass
class TrainedModel:
    path: Path  # the exported model file
    net: object
    task: object
    x_test: np.ndarray  # held-out CK+48 features (subjects not trained on)
    y_test: np.ndarray
    class_names: tuple[str, ...]


def trained_model(workdir: Path, module: str = "linear") -> TrainedModel:
    """Train (once per module type) a PathNet on CK+48 subjects and export it with
    ``save_model``. ``module="conv"``: small conv modules, a short budget."""
    if module in _CACHE:
        return _CACHE[module]
    from pathnet_fer.evolution import EvolutionConfig, TaskData, evolve
    from pathnet_fer.faces.preprocess import preprocess_dataset
    from pathnet_fer.faces.settings import FaceSettings
    from pathnet_fer.pathnet import PathNet, PathNetConfig
    from pathnet_fer.predict import save_model

    settings = FaceSettings(size=48, colour="grey")
    faces = preprocess_dataset(
        "ckplus48",
        data_root() / "ckplus48",
        settings,
        cache_dir=workdir / "cache",
        workers=1,
        progress=False,
    )
    subjects = faces.subjects
    held_out = np.isin(subjects, np.unique(subjects)[::5])  # every 5th subject held out
    x, y = faces.features(), faces.labels
    if module == "conv":
        net_config = PathNetConfig(
            input_dim=x.shape[1], module="conv", image_shape=(48, 48, 1), channels=(4, 8, 8)
        )
        budget = {"generations": 4, "minibatches": 10, "lr": 0.02}
    else:
        net_config = PathNetConfig(input_dim=x.shape[1])
        budget = {"generations": GENERATIONS, "minibatches": MINIBATCHES, "lr": LEARNING_RATE}
    net = PathNet(net_config, runs=1, seed=0, device="cpu")
    # One intra-op thread: these matrices are small, and on a busy 2-core machine two
    # spinning OpenMP threads made this 5x slower (29 s vs 6 s wall).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        task = evolve(
            net,
            TaskData(x[~held_out], y[~held_out]),
            n_classes=len(faces.class_names),
            config=EvolutionConfig(**budget),
            seed=0,
            name="ckplus48",
        )
    finally:
        torch.set_num_threads(threads)
    path = save_model(
        workdir / f"ckplus48-{module}.pt",
        net=net,
        task=task,
        run=0,
        class_names=faces.class_names,
        face_settings=faces.settings,
        dataset="ckplus48",
        metadata={"generations": budget["generations"], "held_out_images": int(held_out.sum())},
    )
    model = TrainedModel(
        path=path,
        net=net,
        task=task,
        x_test=x[held_out],
        y_test=y[held_out],
        class_names=tuple(faces.class_names),
    )
    _CACHE[module] = model
    return model


def first_head(loaded):
    """A model's first head as a single path (the shipped file averages several seeds,
    pretrained/seeds.py; a single-path file is its own first head): what the tests of one
    path's inference settings take from the shipped model."""
    return loaded.with_head(loaded.head_names[0])


def saved_with_inference(loaded, path: Path, inference) -> Path:
    """``loaded`` (a LoadedModel) written again to ``path`` with another
    ``metadata.inference`` (mirror, prior): how the inference-setting tests make files."""
    return save_path_model(
        path,
        loaded.model,
        class_names=loaded.class_names,
        face_settings=loaded.face_settings,
        dataset=loaded.dataset,
        metadata={**loaded.metadata, "inference": inference},
    )
