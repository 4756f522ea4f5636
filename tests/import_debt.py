"""What the import rules of ``test_import_layers.py`` still allow: the part of the issue 21
redesign not done yet. Each list may only shrink; the test says when an entry is paid off.
"""

from __future__ import annotations

# (importer, imported): imports from a higher layer or a sibling group (predict -> experiments:
# evaluate reads datasets through an experiment config; datasets/ and a config loader below both
# would pay it off)
UPWARD: list[tuple[str, str]] = [
    ("predict.commands", "experiments.commands"),
    ("predict.commands", "experiments.config"),
    ("predict.commands", "experiments.datasets"),
    ("predict.commands", "experiments.names"),
    ("predict.evaluate", "experiments.dataset_config"),
    ("predict.evaluate", "experiments.datasets"),
]

# groups of modules that import each other
CIRCLES: list[list[str]] = [
    [
        "experiments.calibration",
        "experiments.config",
        "experiments.config_checks",
        "experiments.cuts",
        "experiments.datasets",
        "experiments.export",
        "experiments.jobs",
        "experiments.limits",
        "experiments.phases",
        "experiments.plan",
        "experiments.sources",
        "experiments.union_checks",
    ],
    [
        "experiments.dask_executor",
        "experiments.executor",
    ],
    [
        "pathnet.block_modules",
        "pathnet.conv_modules",
        "pathnet.linear_modules",
        "pathnet.module_type",
    ],
]

# module: pathnet_fer imports inside its functions
FUNCTION_IMPORTS: dict[str, int] = {
    "baselines.commands": 11,
    "baselines.runner": 16,
    "baselines.source_models": 1,
    "evolution.checkpoint": 1,
    "evolution.task": 1,
    "experiments.calibration": 8,
    "experiments.commands": 18,
    "experiments.config": 9,
    "experiments.config_checks": 6,
    "experiments.cross_dataset": 19,
    "experiments.cuts": 8,
    "experiments.dask_faces": 12,
    "experiments.datasets": 11,
    "experiments.demo": 2,
    "experiments.executor": 2,
    "experiments.export": 3,
    "experiments.jobs": 10,
    "experiments.limits": 4,
    "experiments.plan": 2,
    "experiments.report": 2,
    "experiments.runner": 3,
    "experiments.sources": 11,
    "experiments.union_checks": 1,
    "faces.commands": 3,
    "faces.dataset": 1,
    "faces.preprocess": 2,
    "faces.summary": 2,
    "pathnet.block_modules": 1,
    "pathnet.block_ops": 1,
    "pathnet.conv_modules": 1,
    "pathnet.linear_modules": 1,
    "pathnet.module_type": 3,
    "predict.commands": 24,
    "predict.evaluate": 4,
    "predict.predictor": 1,
    "pretrained.build": 17,
    "pretrained.commands": 7,
}
