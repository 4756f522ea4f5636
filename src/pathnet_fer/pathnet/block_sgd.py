"""SGD on many block paths at once: the forward is ``block_ops.block_layer``, the
backward is autograd (one ``torch.autograd.grad`` per path and step).

Sharing rules are those of the conv paths (``conv_sgd``): each of the G paths trains its
OWN working copy of its DISTINCT modules, written back at the end (summed or averaged
over the paths of a run that share a module, ``shared_update``); the task readout has
ONE working copy per run, shared by that run's paths at every step (each step applies
the sum, or mean, of their gradients). ``recipe`` (``SgdRecipe``) adds momentum, weight
decay (on convolution kernels and the readout's weights; not on BN scale and shift, nor
on biases), label smoothing or soft targets, per-sample augmentation warps, and the
layers' precision (``bf16``: the convolutions and batch norms of a step run under
bfloat16 autocast; the trained tensors, their updates and the readout stay float32).

Batch normalisation: a trainable module normalises with the minibatch's statistics and
moves its running mean and variance (its working copy) by ``bn_momentum`` per step; a
FROZEN module (fixed by an earlier task) normalises with its stored statistics, its
parameters and statistics are never written, so they stay bit-identical. Write-back of
statistics: a module trained by several paths of a run in one call gets the MEAN of
their end statistics (whatever ``shared_update`` says: a sum of running-average changes
would overshoot).

Each path's arithmetic depends only on its own parameters and minibatch (per-path
backward, readout gradients summed in path order), so a run's result does not depend on
which other runs share its batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pathnet_fer.pathnet.block_ops import block_layer, first_layer_nchw, training_norm
from pathnet_fer.pathnet.conv_ops import as_images, layer_stride_pool, warped_images
from pathnet_fer.pathnet.sgd_recipe import PLAIN, SgdRecipe

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet


def _path_modules(genotype_row: list[int], fixed_row: torch.Tensor) -> tuple[list[int], int]:
    """A layer's DISTINCT modules, frozen ones first (each group sorted), and how many
    are frozen."""
    distinct = sorted(set(genotype_row))
    frozen = [m for m in distinct if bool(fixed_row[m])]
    return frozen + [m for m in distinct if not bool(fixed_row[m])], len(frozen)


@torch.no_grad()
def train_block_paths(
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
    recipe: SgdRecipe = PLAIN,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train G block paths by SGD, one minibatch per path per step (see
    ``PathNet.train_paths``)."""
    c = net.config
    dev = net.device
    layouts = net.module_type.layouts
    steps, g, b = batch_index.shape
    n_layers = c.layers
    plan = [layer_stride_pool(layer, n_layers, c.downsample) for layer in range(n_layers)]
    run_list = [int(r) for r in runs.tolist()]
    genotypes = paths.cpu().tolist()
    fixed = net.fixed.cpu()

    # Per path and layer: modules (frozen first), working copies split into parts.
    modules, n_frozen, parts, stats, norms, learn = [], [], [], [], [], []
    for p in range(g):
        run = run_list[p]
        row_m, row_f, row_p, row_s, row_n, row_l = [], [], [], [], [], []
        for layer in range(n_layers):
            mods, kf = _path_modules(genotypes[p][layer], fixed[run, layer])
            idx = torch.tensor(mods, device=dev)
            layout = layouts[layer]
            trains = kf < len(mods)
            # Own tensors (split may return views), leaves of autograd when they train.
            w = {
                name: t.clone().requires_grad_(trains)
                for name, t in layout.split(net.weights[layer][run][idx]).items()
            }
            row_m.append(mods)
            row_f.append(kf)
            row_p.append(w)
            row_s.append(layout.split_stats(net.biases[layer][run][idx]))
            row_n.append(training_norm(kf, float(c.bn_momentum)))
            row_l.append(trains)
        modules.append(row_m)
        n_frozen.append(row_f)
        parts.append(row_p)
        stats.append(row_s)
        norms.append(row_n)
        learn.append(row_l)
    start_w = [
        [layouts[i].join(parts[p][i], len(modules[p][i])) for i in range(n_layers)]
        for p in range(g)
    ]
    start_s = [
        [layouts[i].join_stats(stats[p][i], len(modules[p][i])) for i in range(n_layers)]
        for p in range(g)
    ]
    # The trainable tensors of each path, in a fixed order, with what the step does to them.
    leaves, rules = [], []
    for p in range(g):
        row_leaves, row_rules = [], []
        for layer in range(n_layers):
            if not learn[p][layer]:
                continue
            layout = layouts[layer]
            for name, shape, _ in layout.parts:
                row_leaves.append(parts[p][layer][name])
                row_rules.append((layout.decayed(name), n_frozen[p][layer] * shape[0]))
        leaves.append(row_leaves)
        rules.append(row_rules)

    uniq, inv = torch.unique(runs.to(dev), return_inverse=True)
    sv_w = readout_weight[uniq].clone()  # (Ru, C, F)
    sv_b = readout_bias[uniq].clone()
    sv_w0, sv_b0 = sv_w.clone(), sv_b.clone()
    grad_w, grad_b = torch.zeros_like(sv_w), torch.zeros_like(sv_b)
    readout_lr = torch.full((uniq.numel(), 1), float(lr), device=dev)
    if shared_update == "mean":
        readout_lr /= torch.bincount(inv).to(torch.float32).view(-1, 1)
    run_of = inv.tolist()

    n_classes = readout_weight.shape[1]
    logits_all = torch.empty(steps, g, b, n_classes, device=dev)
    y_steps = y_all[batch_index]  # (S, G, B)
    targets = recipe.target_rows(y_steps, batch_index, n_classes)  # (S, G, B, C)
    momentum, decay = float(recipe.momentum), float(recipe.weight_decay)
    warps = None if recipe.warps is None else recipe.warps.to(dev, torch.float32)
    velocity = [[torch.zeros_like(t) for t in row] for row in leaves] if momentum else None
    vel_w = torch.zeros_like(sv_w) if momentum else None
    vel_b = torch.zeros_like(sv_b) if momentum else None
    bf16 = recipe.precision == "bf16"  # layers under autocast; readout and updates float32
    nchw_first = first_layer_nchw(recipe.precision)
    rows_per_step = batch_index.reshape(steps, g * b).unbind(0)
    h, w_, ch = c.image_shape
    avg = c.readout_features == "avg"
    for s in range(steps):
        x_step = x_all.index_select(0, rows_per_step[s])
        if warps is None:
            img = as_images(x_step, c.image_shape, c.input_norm)
        else:
            img = warped_images(x_step, c.image_shape, c.input_norm, warps[s].view(g * b, 2, 3))
        img = img.view(g, b, ch, h, w_)
        grad_w.zero_()
        grad_b.zero_()
        for p in range(g):
            r = run_of[p]
            with torch.enable_grad():
                with torch.autocast(dev.type, torch.bfloat16, enabled=bf16):
                    a = img[p]
                    for layer in range(n_layers):
                        a = block_layer(
                            a,
                            parts[p][layer],
                            stats[p][layer],
                            layouts[layer],
                            len(modules[p][layer]),
                            c.combine,
                            plan[layer][1],
                            norms[p][layer],
                            nchw=nchw_first and layer == 0,
                        )
                a = a.float()
                f = a.mean((2, 3)) if avg else a.flatten(1)
                rw = sv_w[r].detach().requires_grad_()
                rb = sv_b[r].detach().requires_grad_()
                logits = torch.nn.functional.linear(f, rw, rb)
                loss = -(targets[s, p] * logits.log_softmax(-1)).sum(-1).mean()
                grads = torch.autograd.grad(loss, [*leaves[p], rw, rb])
            logits_all[s, p] = logits.detach()
            grad_w[r].add_(grads[-2])
            grad_b[r].add_(grads[-1])
            if decay:
                grad_w[r].add_(sv_w[r], alpha=decay)
            for i, (leaf, grad, (decayed, frozen_rows)) in enumerate(
                zip(leaves[p], grads[:-2], rules[p], strict=True)
            ):
                if decay and decayed:
                    grad = grad.add(leaf, alpha=decay)
                if frozen_rows:
                    grad[:frozen_rows] = 0.0
                if velocity is not None:
                    grad = velocity[p][i].mul_(momentum).add_(grad)
                leaf.sub_(grad, alpha=lr)
        step_w, step_b = grad_w, grad_b
        if vel_w is not None:
            step_w = vel_w.mul_(momentum).add_(grad_w)
            step_b = vel_b.mul_(momentum).add_(grad_b)
        sv_w.sub_(step_w * readout_lr.unsqueeze(2))
        sv_b.sub_(step_b * readout_lr)

    logp = logits_all.log_softmax(-1)
    loss_sum = -(logp * targets).sum(-1).sum((0, 2))  # (G,)
    correct = (logits_all.argmax(-1) == y_steps).sum((0, 2))
    for layer in range(n_layers):
        layout = layouts[layer]
        keys, dw, ds = [], [], []
        for p in range(g):
            if not learn[p][layer]:
                continue
            kf, mods = n_frozen[p][layer], modules[p][layer]
            k = len(mods)
            new_w = layout.join(parts[p][layer], k) - start_w[p][layer]
            new_s = layout.join_stats(stats[p][layer], k) - start_s[p][layer]
            keys += [run_list[p] * c.modules + m for m in mods[kf:]]
            dw.append(new_w[kf:])
            ds.append(new_s[kf:])
        if keys:
            _write_back(
                net,
                layer,
                torch.tensor(keys, device=dev),
                torch.cat(dw),
                torch.cat(ds),
                shared_update,
            )
    readout_weight.index_add_(0, uniq, sv_w - sv_w0)
    readout_bias.index_add_(0, uniq, sv_b - sv_b0)
    return correct, loss_sum


def _write_back(net, layer, keys, dw, ds, shared_update) -> None:
    """Add each trained module's change (``keys``: run * M + module, one per path that
    trained it) into the stacked tensors: weights summed or averaged over those paths
    (``shared_update``), statistics always averaged."""
    count = torch.bincount(keys, minlength=net.runs * net.config.modules).to(dw.dtype)[keys]
    if shared_update == "mean":
        dw = dw / count.view(-1, 1)
    ds = ds / count.view(-1, 1)
    weights, stats = net.weights[layer], net.biases[layer]
    weights.view(-1, weights.shape[-1]).index_add_(0, keys, dw)
    stats.view(-1, stats.shape[-1]).index_add_(0, keys, ds)
