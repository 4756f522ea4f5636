"""What the import rules of ``test_import_layers.py`` still allow: the part of the issue 21
redesign not done yet. Each list may only shrink; the test says when an entry is paid off.
"""

from __future__ import annotations

# (importer, imported): imports from a higher layer or a sibling group (none left: predict and
# experiments meet only in formats/, scoring/, datasets/ and yaml_config/ below them)
UPWARD: list[tuple[str, str]] = []

# groups of modules that import each other (none left)
CIRCLES: list[list[str]] = []

# module: pathnet_fer imports inside its functions. The command modules (commands.py, and
# predict's cli_shared.py and evaluate_command.py) import their stage
# when a command runs, so that `pathnet-fer --help` and argument errors do not load torch.
FUNCTION_IMPORTS: dict[str, int] = {
    "baselines.commands": 11,
    "experiments.commands": 18,
    "faces.commands": 3,
    "predict.cli_shared": 2,
    "predict.commands": 12,
    "predict.evaluate_command": 10,
    "pretrained.commands": 5,
}
