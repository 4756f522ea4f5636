"""Plain SGD on many conv paths at once: hand-written forward/backward, no autograd.

Same sharing rules as the linear ``linear_sgd`` (see its docstring): each of the G paths
trains its OWN working copy of its modules, and the changes are written back at the end
(summed or averaged over the paths of a run that share a module); the task readout has
ONE working copy per run, shared by that run's paths at every step (each step applies
the sum, or mean, of their gradients). Fixed modules and duplicate slots never change,
so frozen parameters stay bit-identical.

Per path and layer a step is: ONE convolution for the N active modules (they see the
same input: one ``(N*Cout, Cin, k, k)`` filter bank), ReLU in place, the combine as a
batched GEMV, a 2x2 max-pool that keeps its indices (its backward is then a scatter);
backward is the broadcast of the combine, ReLU's mask,
and one ``convolution_backward`` that returns the input, weight and bias gradients at
once (the first layer skips its input gradient). Each path's arithmetic depends only on
its own parameters and minibatch, so a run's result does not depend on which other runs
share its batch.

``recipe`` (``SgdRecipe``) adds momentum, weight decay, label smoothing or soft targets,
and warps each minibatch image before the input norm (augmentation); the plain recipe
runs exactly the paper's step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pathnet_fer.pathnet.conv_ops import as_images, layer_stride_pool, warped_images
from pathnet_fer.pathnet.genotype import slot_weights
from pathnet_fer.pathnet.sgd_recipe import PLAIN, SgdRecipe

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet


@torch.no_grad()
def train_conv_paths(
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
    """Train G conv paths by SGD, one minibatch per path per step (see ``PathNet.train_paths``)."""
    c = net.config
    dev = net.device
    runs = runs.to(dev)
    paths = paths.to(dev)
    steps, g, b = batch_index.shape
    n_layers, n_slots = c.layers, c.max_active
    plan = [layer_stride_pool(layer, n_layers, c.downsample) for layer in range(n_layers)]
    pad = c.kernel // 2

    cw = slot_weights(paths, c.combine)  # (G, L, N)
    layer_ids = torch.arange(n_layers, device=dev).unsqueeze(0)
    fixed = net.fixed.to(dev)[runs.unsqueeze(1), layer_ids]  # (G, L, M)
    trainable = (cw > 0) & ~fixed.gather(2, paths)  # (G, L, N)

    # Working copies per path and layer: (N*Cout, Cin, k, k), (N*Cout,).
    rw = runs.unsqueeze(1)
    start_w, start_b, ws, bs, masks = [], [], [], [], []
    for layer in range(n_layers):
        w = net.weights[layer][rw, paths[:, layer]]  # (G, N, Cout, Cin, k, k)
        bias = net.biases[layer][rw, paths[:, layer]]  # (G, N, Cout)
        start_w.append(w)
        start_b.append(bias)
        ws.append(list(w.reshape(g, -1, *w.shape[3:]).clone().unbind(0)))
        bs.append(list(bias.reshape(g, -1).clone().unbind(0)))
        mask = trainable[:, layer].repeat_interleave(w.shape[2], dim=1).to(torch.float32)
        masks.append(mask if bool((~trainable[:, layer]).any()) else None)
    combine = [[cw[p, layer].view(1, 1, n_slots) for layer in range(n_layers)] for p in range(g)]
    spread = [[cw[p, layer].view(1, n_slots, 1) for layer in range(n_layers)] for p in range(g)]

    uniq, inv = torch.unique(runs, return_inverse=True)
    sv_w = readout_weight[uniq].clone()  # (Ru, C, F)
    sv_b = readout_bias[uniq].clone()
    sv_w0, sv_b0 = sv_w.clone(), sv_b.clone()
    grad_w, grad_b = torch.zeros_like(sv_w), torch.zeros_like(sv_b)
    readout_lr = torch.full((uniq.numel(), 1), lr, device=dev)
    if shared_update == "mean":
        readout_lr /= torch.bincount(inv).to(torch.float32).view(-1, 1)
    run_of = inv.tolist()

    n_classes = readout_weight.shape[1]
    logits_all = torch.empty(steps, g, b, n_classes, device=dev)
    y_steps = y_all[batch_index]  # (S, G, B)
    onehot = recipe.target_rows(y_steps, batch_index, n_classes)  # (S, G, B, C) targets
    momentum, decay = float(recipe.momentum), float(recipe.weight_decay) * b
    warps = None if recipe.warps is None else recipe.warps.to(dev, torch.float32)
    if momentum:
        vel_w = [[torch.zeros_like(w) for w in ws[layer]] for layer in range(n_layers)]
        vel_b = [[torch.zeros_like(v) for v in bs[layer]] for layer in range(n_layers)]
        vel_sw, vel_sb = torch.zeros_like(sv_w), torch.zeros_like(sv_b)
    rows_per_step = batch_index.reshape(steps, g * b).unbind(0)
    h, w_, ch = c.image_shape
    step_lr = lr / b  # mean loss over the minibatch
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
            acts, zs, pre_pool, pool_index = [img[p]], [], [], []
            a = img[p]
            for layer in range(n_layers):
                stride, pool = plan[layer]
                z = torch.nn.functional.conv2d(a, ws[layer][p], bs[layer][p], stride, pad)
                z = z.relu_()
                zb, _, zh, zw = z.shape
                a = torch.matmul(combine[p][layer], z.view(zb, n_slots, -1)).view(zb, -1, zh, zw)
                zs.append(z)
                pre_pool.append(a)
                if pool:
                    a, where = torch.nn.functional.max_pool2d_with_indices(a, 2)
                    pool_index.append(where)
                else:
                    pool_index.append(None)
                acts.append(a)
            f = a.mean((2, 3)) if avg else a.flatten(1)
            r = run_of[p]
            logits = torch.addmm(sv_b[r], f, sv_w[r].t(), out=logits_all[s, p])
            d = logits.softmax(-1).sub_(onehot[s, p])  # dLoss/dlogits * B
            grad_w[r].addmm_(d.t(), f)
            grad_b[r].add_(d.sum(0))
            if decay:
                grad_w[r].add_(sv_w[r], alpha=decay)
            df = d @ sv_w[r]
            if avg:
                fa = acts[-1]
                da = df.div_(fa.shape[2] * fa.shape[3]).view(b, -1, 1, 1).expand_as(fa)
            else:
                da = df.view_as(acts[-1])
            for layer in range(n_layers - 1, -1, -1):
                stride, pool = plan[layer]
                if pool:
                    da = torch.ops.aten.max_pool2d_with_indices_backward(
                        da,
                        pre_pool[layer],
                        [2, 2],
                        [2, 2],
                        [0, 0],
                        [1, 1],
                        False,
                        pool_index[layer],
                    )
                z = zs[layer]
                zb = z.shape[0]
                dz = (da.reshape(zb, 1, -1) * spread[p][layer]).view_as(z)
                dz = torch.ops.aten.threshold_backward(dz, z, 0.0)
                weight = ws[layer][p]
                da, dw, db = torch.ops.aten.convolution_backward(
                    dz,
                    acts[layer],
                    weight,
                    [weight.shape[0]],
                    [stride, stride],
                    [pad, pad],
                    [1, 1],
                    False,
                    [0, 0],
                    1,
                    [layer > 0, True, True],
                )
                if decay:
                    dw.add_(weight, alpha=decay)
                if masks[layer] is not None:
                    m = masks[layer][p]
                    dw.mul_(m.view(-1, 1, 1, 1))
                    db.mul_(m)
                if momentum:
                    dw = vel_w[layer][p].mul_(momentum).add_(dw)
                    db = vel_b[layer][p].mul_(momentum).add_(db)
                weight.sub_(dw, alpha=step_lr)
                bs[layer][p].sub_(db, alpha=step_lr)
        step_w, step_b = grad_w, grad_b
        if momentum:
            step_w = vel_sw.mul_(momentum).add_(grad_w)
            step_b = vel_sb.mul_(momentum).add_(grad_b)
        sv_w.sub_(step_w * (readout_lr.unsqueeze(2) / b))
        sv_b.sub_(step_b * (readout_lr / b))

    logp = logits_all.log_softmax(-1)
    loss_sum = -(logp * onehot).sum(-1).sum((0, 2))  # (G,)
    correct = (logits_all.argmax(-1) == y_steps).sum((0, 2))
    for layer in range(n_layers):
        new_w = torch.stack(ws[layer]).view_as(start_w[layer])
        new_b = torch.stack(bs[layer]).view_as(start_b[layer])
        _write_back(
            net,
            layer,
            runs,
            paths[:, layer],
            trainable[:, layer],
            new_w - start_w[layer],
            new_b - start_b[layer],
            shared_update,
        )
    readout_weight.index_add_(0, uniq, sv_w - sv_w0)
    readout_bias.index_add_(0, uniq, sv_b - sv_b0)
    return correct, loss_sum


def _write_back(net, layer, runs, idx, sel, dw, db, shared_update) -> None:
    """Add each trainable slot's change into the stacked tensors (sum or mean over paths).
    ``idx, sel (G, N)``; ``dw (G, N, Cout, Cin, k, k)``; ``db (G, N, Cout)``."""
    if not bool(sel.any()):
        return
    modules = net.config.modules
    flat = (runs.unsqueeze(1) * modules + idx)[sel]  # (T,)
    dw, db = dw[sel], db[sel]
    if shared_update == "mean":
        count = torch.bincount(flat, minlength=net.runs * modules).to(dw.dtype)[flat]
        dw = dw / count.view(-1, 1, 1, 1, 1)
        db = db / count.view(-1, 1)
    weights, biases = net.weights[layer], net.biases[layer]
    weights.view(-1, *weights.shape[2:]).index_add_(0, flat, dw)
    biases.view(-1, biases.shape[-1]).index_add_(0, flat, db)
