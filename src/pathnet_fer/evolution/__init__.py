"""Binary-tournament evolution of paths, and transfer by fixing the best path."""

from pathnet_fer.evolution.callbacks import ProgressBar, TimeBudget
from pathnet_fer.evolution.checkpoint import CheckpointEvery, load_checkpoint, save_checkpoint
from pathnet_fer.evolution.config import EvolutionConfig
from pathnet_fer.evolution.data import TaskData
from pathnet_fer.evolution.events import GenerationCallback, GenerationEvent
from pathnet_fer.evolution.evolve import evolve
from pathnet_fer.evolution.task import Task

__all__ = [
    "CheckpointEvery",
    "EvolutionConfig",
    "GenerationCallback",
    "GenerationEvent",
    "ProgressBar",
    "Task",
    "TaskData",
    "TimeBudget",
    "evolve",
    "load_checkpoint",
    "save_checkpoint",
]
