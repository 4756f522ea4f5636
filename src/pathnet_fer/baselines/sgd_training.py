"""Minibatch SGD with the same budget unit as a PathNet task, shared by every baseline.

A PathNet generation trains 2 paths x 50 minibatches x 16 samples = 1,600 samples, so a
task of G generations sees G x 1,600 samples. A baseline with the same budget runs
``G x 100`` minibatches of 16. Its learning curve is reported per *generation
equivalent* (a block of 100 minibatches) so it lines up with PathNet's curves, and its
"final training loss" (the paper's Table I figure) is the mean loss over the last block.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

PATHS_PER_GENERATION = 2
MINIBATCHES_PER_PATH = 50
MINIBATCH_SIZE = 16
SAMPLES_PER_GENERATION = PATHS_PER_GENERATION * MINIBATCHES_PER_PATH * MINIBATCH_SIZE


def samples_for_generations(
    generations: int, minibatches: int = MINIBATCHES_PER_PATH, batch_size: int = MINIBATCH_SIZE
) -> int:
    """Samples one PathNet task of ``generations`` generations trains on (2 paths x
    ``minibatches`` x ``batch_size`` per generation; the paper's 50 x 16 by default)."""
    return int(generations) * PATHS_PER_GENERATION * int(minibatches) * int(batch_size)


@dataclass
class TrainingLog:
    """Per-minibatch training loss and accuracy (on the minibatch just trained on)."""

    loss: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    samples_seen: int = 0
    batch_size: int = MINIBATCH_SIZE

    def per_generation(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean loss and accuracy per block of one generation's worth of minibatches."""
        per_block = max(1, SAMPLES_PER_GENERATION // self.batch_size)
        n = len(self.loss)
        if n == 0:
            return np.zeros(0), np.zeros(0)
        starts = np.arange(0, n, per_block)
        loss = np.add.reduceat(np.asarray(self.loss), starts) / np.diff(np.append(starts, n))
        acc = np.add.reduceat(np.asarray(self.accuracy), starts) / np.diff(np.append(starts, n))
        return loss, acc

    @property
    def final_loss(self) -> float:
        """Mean training loss over the last generation-equivalent block (Table I's figure)."""
        loss, _ = self.per_generation()
        return float(loss[-1]) if len(loss) else float("nan")

    @property
    def final_accuracy(self) -> float:
        _, acc = self.per_generation()
        return float(acc[-1]) if len(acc) else float("nan")


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Run a block with ``n`` torch threads (None: leave as is), restoring the old count.

    Tiny MLPs run several times faster single-threaded (thread hand-off costs more than
    their matrix products); CNN backbones use every core.
    """
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def minibatch_indices(n: int, samples: int, batch_size: int, seed: int) -> Iterable[np.ndarray]:
    """Index minibatches over reshuffled epochs until ``samples`` samples were drawn."""
    if n == 0:
        raise ValueError("no training samples")
    rng = np.random.default_rng(seed)
    n_batches = max(1, -(-int(samples) // batch_size))
    order = np.empty(0, dtype=np.int64)
    for _ in range(n_batches):
        while len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(n)])
        batch, order = order[:batch_size], order[batch_size:]
        yield batch


def train_sgd(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    y: torch.Tensor | np.ndarray,
    samples: int,
    lr: float,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    batch_size: int = MINIBATCH_SIZE,
    seed: int = 0,
    parameters: Iterable[nn.Parameter] | None = None,
    transform: Callable[[torch.Tensor | np.ndarray], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
    log: TrainingLog | None = None,
) -> TrainingLog:
    """Train ``model`` on ``(x, y)`` with SGD for ``samples`` samples; return the log.

    ``transform`` maps a minibatch of raw ``x`` to model input (e.g. resize crops for a
    CNN); without it ``x`` is used as is. Only ``parameters`` (default: all that require
    grad) are updated, so frozen parts stay bit-identical.
    """
    params = [
        p for p in (parameters if parameters is not None else model.parameters()) if p.requires_grad
    ]
    if not params:
        raise ValueError("nothing to train: no parameter requires grad")
    optimiser = torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=weight_decay)
    y_all = torch.as_tensor(np.array(y), dtype=torch.long).to(device)
    # Vectors (flattened crops, cached features) go to the device once; images that need
    # a per-batch transform are moved batch by batch.
    x_all = torch.as_tensor(x).to(device) if transform is None else None
    log = log or TrainingLog(batch_size=batch_size)
    torch.manual_seed(seed)  # dropout and the like
    losses: list[torch.Tensor] = []
    hits: list[torch.Tensor] = []
    for idx in minibatch_indices(len(y_all), samples, batch_size, seed):
        xb = x_all[idx] if x_all is not None else transform(x[idx]).to(device)
        yb = y_all[idx]
        logits = model(xb)
        loss = F.cross_entropy(logits, yb)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        # Kept on the device: reading them every step would synchronise a GPU each time.
        losses.append(loss.detach())
        hits.append((logits.detach().argmax(1) == yb).float().mean())
        log.samples_seen += len(idx)
    if losses:
        log.loss.extend(torch.stack(losses).cpu().tolist())
        log.accuracy.extend(torch.stack(hits).cpu().tolist())
    return log


@torch.inference_mode()
def predict_proba(
    model: nn.Module,
    x: torch.Tensor | np.ndarray,
    batch_size: int = 256,
    transform: Callable[[torch.Tensor | np.ndarray], torch.Tensor] | None = None,
    device: str | torch.device = "cpu",
) -> np.ndarray:
    """Class probabilities ``(n, C)`` in eval mode, in batches."""
    was_training = model.training
    model.eval()
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        xb = transform(xb) if transform is not None else torch.as_tensor(xb)
        out.append(model(xb.to(device)).softmax(1).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy() if out else np.zeros((0, 0), dtype=np.float32)
