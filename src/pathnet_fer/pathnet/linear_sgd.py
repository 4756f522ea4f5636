"""Plain SGD on many paths at once: manual forward/backward on gathered module copies.

Why manual: a generation is 50 sequential SGD steps on minibatches of 16, so the cost
per step is dominated by framework overhead, not arithmetic. Each step here is a fixed,
short sequence of batched tensor ops (``bmm``/``baddbmm`` over G = paths x runs) with no
autograd graph, and the weight update is fused into the gradient product
(``W.baddbmm_(dZ^T, A, alpha=-lr)``).

How the paths of one call share parameters (``shared_update`` = ``sum`` | ``mean``):
- MODULES: each of the G paths trains its OWN working copy of its modules on its own
  minibatches, starting from the same stored parameters. At the end the changes
  (deltas) are written back: a module used by one path gets exactly that path's SGD
  result; a module used by several paths of the same run gets the SUM of their deltas
  (the first-order equivalent of training them one after the other) or their mean.
- READOUT (one per task, shared by all paths of a run): ONE working copy per run,
  used by every path of that run at every step; each step applies the sum (or mean) of
  the paths' readout gradients. (Summing per-path readout deltas at the end instead
  was measured to learn clearly worse than sequential training on digits: 0.43 vs 0.57
  held-out accuracy; per-step sharing gives 0.60.)
Fixed modules and duplicate slots never change (their gradient is masked, and nothing is
written back to them), so frozen parameters stay bit-identical.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import torch

from pathnet_fer.pathnet.config import SHARED_UPDATES
from pathnet_fer.pathnet.genotype import slot_weights

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet


# On the CPU, runs are trained in groups whose working copies fit in cache (each step
# streams all of a group's first-layer weights twice); on CUDA, all runs in one group.
# Runs share nothing, so grouping changes speed, not the result.
CPU_GROUP_BYTES = int(os.environ.get("PATHNET_FER_GROUP_BYTES", 2 * 1024 * 1024))


def run_groups(net: PathNet, runs: torch.Tensor) -> list[torch.Tensor]:
    """Path indices split into groups of whole runs (paths of one run stay together)."""
    if net.device.type != "cpu":
        return [torch.arange(runs.numel())]
    per_path = 4 * net.config.max_active * net.config.units * sum(net.config.layer_input_dims())
    uniq, counts = torch.unique(runs.cpu(), return_counts=True)
    per_run = per_path * int(counts.max())
    runs_per_group = max(1, CPU_GROUP_BYTES // per_run)
    if runs_per_group >= uniq.numel():
        return [torch.arange(runs.numel())]
    cpu_runs = runs.cpu()
    return [
        torch.nonzero(torch.isin(cpu_runs, uniq[i : i + runs_per_group])).flatten()
        for i in range(0, uniq.numel(), runs_per_group)
    ]


@torch.no_grad()
def train_paths(
    net: PathNet,
    runs: torch.Tensor,
    paths: torch.Tensor,
    readout_weight: torch.Tensor,
    readout_bias: torch.Tensor,
    x_all: torch.Tensor,
    y_all: torch.Tensor,
    batch_index: torch.Tensor,
    lr: float,
    shared_update: str = "sum",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train G paths by SGD, one minibatch per step, all paths in each batched step.

    ``runs (G,)``: the run of each path; ``paths (G, L, N)``; ``readout_* (R, C, U)/(R, C)``
    (updated in place); ``x_all (n, D)``, ``y_all (n,)``; ``batch_index (S, G, B)`` rows of
    ``x_all`` for S steps of B samples. Returns per path the number of correctly
    classified samples and the summed cross-entropy, both over the S*B samples seen
    (predictions made at each step before its update, as in training).
    """
    if shared_update not in SHARED_UPDATES:
        raise ValueError(f"shared_update must be one of {SHARED_UPDATES}, got {shared_update!r}")
    if net.config.module != "linear":
        raise ValueError(f"linear_sgd trains linear modules; this net has {net.config.module!r}")
    groups = run_groups(net, runs)
    if len(groups) == 1:
        return _train_group(
            net,
            runs,
            paths,
            readout_weight,
            readout_bias,
            x_all,
            y_all,
            batch_index,
            lr,
            shared_update,
        )
    correct = torch.empty(runs.numel(), dtype=torch.int64, device=net.device)
    loss = torch.empty(runs.numel(), device=net.device)
    for sel in groups:
        dev_sel = sel.to(net.device)
        c_g, l_g = _train_group(
            net,
            runs[sel],
            paths[sel],
            readout_weight,
            readout_bias,
            x_all,
            y_all,
            batch_index[:, dev_sel],
            lr,
            shared_update,
        )
        correct[dev_sel], loss[dev_sel] = c_g, l_g
    return correct, loss


def _train_group(
    net, runs, paths, readout_weight, readout_bias, x_all, y_all, batch_index, lr, shared_update
) -> tuple[torch.Tensor, torch.Tensor]:
    """One group of runs: per step ~27 batched ops, no autograd.

    Layout tricks that cut the op count per step: hidden-layer and readout biases are
    folded into their weights (activations carry a constant-1 column, so one
    ``baddbmm_`` updates weight and bias); the per-layer combine of the N module outputs
    (mean or sum over distinct modules) is one ``baddbmm`` with a fixed (N*U, U+1)
    matrix that also writes the constant-1 column; logits are written in place.
    """
    c = net.config
    dev = net.device
    runs = runs.to(dev)
    paths = paths.to(dev)
    steps, g, b = batch_index.shape
    n_classes = readout_weight.shape[1]
    n_slots, units = c.max_active, c.units
    k = n_slots * units
    u1 = units + 1
    n_layers = c.layers

    cw = slot_weights(paths, c.combine)  # (G, L, N)
    fixed = net.fixed.to(dev)[runs.unsqueeze(1), torch.arange(n_layers, device=dev).unsqueeze(0)]
    fixed_slot = fixed.gather(2, paths)  # (G, L, N): slot names a fixed module
    trainable = (cw > 0) & ~fixed_slot
    any_frozen = [bool((~trainable[:, layer]).any()) for layer in range(n_layers)]
    tmask = [
        trainable[:, layer].repeat_interleave(units, dim=1).reshape(g, 1, k).float()
        for layer in range(n_layers)
    ]
    # combine[l] (G, N*U, U+1): a = h @ combine puts sum_n cw_n h_n in the first U
    # columns and 0 in the last; baddbmm with `one` (0,..,0,1) makes that column 1.
    eye = torch.eye(units, u1, device=dev)
    combine = [
        (cw[:, layer].reshape(g, n_slots, 1, 1) * eye).reshape(g, k, u1)
        for layer in range(n_layers)
    ]
    combine_t = [m.transpose(1, 2).contiguous() for m in combine]  # (G, U+1, N*U)
    one = torch.zeros(1, 1, u1, device=dev)
    one[..., units] = 1.0

    # Working copies. Layer 0: (G, N*U, D) + bias (G, 1, N*U); layers >= 1: (G, N*U, U+1)
    # with the bias as last column.
    rw = runs.unsqueeze(1)
    ws = []
    for layer in range(n_layers):
        w = net.weights[layer][rw, paths[:, layer]].reshape(g, k, -1)
        if layer > 0:
            bias = net.biases[layer][rw, paths[:, layer]].reshape(g, k, 1)
            w = torch.cat([w, bias], dim=2)
        ws.append(w)
    b0 = net.biases[0][rw, paths[:, 0]].reshape(g, 1, k)
    w_start = [w.clone() for w in ws]
    b0_start = b0.clone()
    # The readout is shared by all paths of a run at every step: one working copy per run
    # (G... -> Ru), weight and bias as (Ru, C, U+1); gradients summed (or averaged) per run.
    uniq, inv = torch.unique(runs, return_inverse=True)
    sv = torch.cat([readout_weight[uniq], readout_bias[uniq].unsqueeze(2)], dim=2)
    sv_start = sv.clone()
    readout_lr = step_lr_of(lr, b)
    n_runs = uniq.numel()
    per_group = g // n_runs
    # Fast form when the paths come run by run, the same number per run (what evolve
    # passes): the readout works on (runs, paths*B) views, no gathers per step.
    grouped = g == n_runs * per_group and torch.equal(
        inv, torch.arange(n_runs, device=dev).repeat_interleave(per_group)
    )
    if shared_update == "mean":
        per_run = torch.bincount(inv).to(torch.float32)[inv].view(g, 1, 1)
        grouped_lr = readout_lr / per_group
    else:
        per_run = None
        grouped_lr = readout_lr

    y_steps = y_all[batch_index]  # (S, G, B)
    onehot = torch.nn.functional.one_hot(y_steps, n_classes).to(torch.float32)
    logits_all = torch.empty(steps, g, b, n_classes, device=dev)
    step_lr = -lr / b  # mean loss over the minibatch
    flat_rows = batch_index.reshape(steps, g * b)
    # Inputs gathered per step: measured fastest (a gather of several steps into fresh
    # memory page-faults; index_select(out=buffer) takes a slower path on the CPU).

    # Per-step operands prepared once (views follow the in-place updates): saves the
    # select/transpose/view dispatches inside the loop.
    rows_per_step = flat_rows.unbind(0)
    w_t = [w.transpose(1, 2) for w in ws]
    sv_t = sv.transpose(1, 2)
    ones_b = torch.ones(g, 1, b, device=dev)
    if grouped:
        onehot_steps = onehot.view(steps, n_runs, per_group * b, n_classes).unbind(0)
        out_steps = logits_all.view(steps, n_runs, per_group * b, n_classes).unbind(0)
    else:
        onehot_steps, out_steps = onehot.unbind(0), logits_all.unbind(0)

    for s in range(steps):
        x = x_all.index_select(0, rows_per_step[s]).view(g, b, -1)
        acts = [x]
        h = torch.baddbmm(b0, x, w_t[0]).relu_()
        hs = [h]
        a = torch.baddbmm(one, h, combine[0])  # (G, B, U+1), last column 1
        for layer in range(1, n_layers):
            acts.append(a)
            h = torch.bmm(a, w_t[layer]).relu_()
            hs.append(h)
            a = torch.baddbmm(one, h, combine[layer])
        if grouped:
            a_run = a.view(n_runs, per_group * b, u1)
            logits = torch.bmm(a_run, sv_t, out=out_steps[s])
            d = logits.softmax(-1).sub_(onehot_steps[s])  # dLoss/dlogits * B
            da = torch.bmm(d, sv).view(g, b, u1)
            sv.baddbmm_(d.transpose(1, 2), a_run, alpha=grouped_lr)
        else:
            vw = sv[inv]
            logits = torch.bmm(a, vw.transpose(1, 2), out=out_steps[s])
            d = logits.softmax(-1).sub_(onehot_steps[s])
            da = torch.bmm(d, vw)
            gv = torch.bmm(d.transpose(1, 2), a)
            if per_run is not None:
                gv = gv / per_run
            sv.index_add_(0, inv, gv, alpha=readout_lr)
        for layer in range(n_layers - 1, -1, -1):
            # da's last column (d/d of the constant 1) meets combine_t's zero row.
            dz = torch.ops.aten.threshold_backward(torch.bmm(da, combine_t[layer]), hs[layer], 0.0)
            if layer > 0:
                da = torch.bmm(dz, ws[layer])
            if any_frozen[layer]:
                dz.mul_(tmask[layer])
            ws[layer].baddbmm_(dz.transpose(1, 2), acts[layer], alpha=step_lr)
        b0.baddbmm_(ones_b, dz, alpha=step_lr)  # layer 0's bias: sum over the minibatch

    logp = logits_all.log_softmax(-1)
    loss = -(logp * onehot).sum(-1).sum((0, 2))  # (G,)
    correct = (logits_all.argmax(-1) == y_steps).sum((0, 2))

    deltas_w, deltas_b = [], []
    for layer in range(n_layers):
        delta = ws[layer] - w_start[layer]
        if layer == 0:
            deltas_w.append(delta)
            deltas_b.append((b0 - b0_start).reshape(g, k))
        else:
            deltas_w.append(delta[..., :units])
            deltas_b.append(delta[..., units])
    _write_back(net, runs, paths, trainable, deltas_w, deltas_b, shared_update)
    delta_v = sv - sv_start
    readout_weight.index_add_(0, uniq, delta_v[..., :units].contiguous())
    readout_bias.index_add_(0, uniq, delta_v[..., units].contiguous())
    return correct, loss


def step_lr_of(lr: float, batch: int) -> float:
    """SGD on the minibatch MEAN loss: the update of a summed gradient is scaled by -lr/B."""
    return -lr / batch


def _write_back(net, runs, paths, trainable, deltas_w, deltas_b, shared_update) -> None:
    """Add each trainable slot's delta into the stacked tensors (sum or mean over paths).
    ``deltas_w[l] (G, N*U, in_l)``, ``deltas_b[l] (G, N*U)``."""
    c = net.config
    g = paths.shape[0]
    for layer in range(c.layers):
        sel = trainable[:, layer]  # (G, N)
        if not bool(sel.any()):
            continue
        flat = (runs.unsqueeze(1) * c.modules + paths[:, layer])[sel]  # (T,)
        dw = deltas_w[layer].reshape(g, c.max_active, c.units, -1)[sel]
        db = deltas_b[layer].reshape(g, c.max_active, c.units)[sel]
        if shared_update == "mean":
            count = torch.bincount(flat, minlength=net.runs * c.modules).to(dw.dtype)[flat]
            dw = dw / count.view(-1, 1, 1)
            db = db / count.view(-1, 1)
        fan_in = net.weights[layer].shape[-1]
        net.weights[layer].view(-1, c.units, fan_in).index_add_(0, flat, dw)
        net.biases[layer].view(-1, c.units).index_add_(0, flat, db)
