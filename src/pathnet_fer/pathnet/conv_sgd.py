"""Plain SGD on many conv paths at once: per-path working copies, one backward per step.

Same sharing rules as the linear ``path_sgd`` (see its docstring): each of the G paths
trains its OWN working copy of its modules, and the changes are written back at the end
(summed or averaged over the paths of a run that share a module); the task readout has
ONE working copy per run, shared by that run's paths at every step. Fixed modules and
duplicate slots never change, so frozen parameters stay bit-identical.

Why autograd here (the linear type is hand-written): a conv step is dominated by the
convolutions' arithmetic (~7 MFLOP per sample and path for channels [8, 16, 32], N=5),
not by dispatch; autograd's per-op overhead is a few percent of it. A layer's N active
modules see the same input, so they run as ONE convolution with N*Cout outputs, and
their combine is a batched GEMV. Each path's arithmetic depends only on its own
parameters and minibatch, so a run's result does not depend on which runs share a batch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

from pathnet_fer.pathnet.conv_ops import as_images, conv_layer, layer_stride_pool, readout_features
from pathnet_fer.pathnet.genotype import slot_weights

if TYPE_CHECKING:
    from pathnet_fer.pathnet.supernet import PathNet

SHARED_UPDATES = ("sum", "mean")


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
) -> tuple[torch.Tensor, torch.Tensor]:
    """Train G conv paths by SGD, one minibatch per path per step (see ``PathNet.train_paths``)."""
    if shared_update not in SHARED_UPDATES:
        raise ValueError(f"shared_update must be one of {SHARED_UPDATES}, got {shared_update!r}")
    c = net.config
    dev = net.device
    runs = runs.to(dev)
    paths = paths.to(dev)
    steps, g, b = batch_index.shape
    n_layers = c.layers
    plan = [layer_stride_pool(layer, n_layers, c.downsample) for layer in range(n_layers)]

    cw = slot_weights(paths, c.combine)  # (G, L, N)
    layer_ids = torch.arange(n_layers, device=dev).unsqueeze(0)
    fixed = net.fixed.to(dev)[runs.unsqueeze(1), layer_ids]  # (G, L, M)
    trainable = (cw > 0) & ~fixed.gather(2, paths)  # (G, L, N)

    # Working copies, per path and layer: (N*Cout, Cin, k, k) and (N*Cout,).
    rw = runs.unsqueeze(1)
    start_w, start_b, work_w, work_b, masks = [], [], [], [], []
    for layer in range(n_layers):
        w = net.weights[layer][rw, paths[:, layer]]  # (G, N, Cout, Cin, k, k)
        bias = net.biases[layer][rw, paths[:, layer]]  # (G, N, Cout)
        start_w.append(w)
        start_b.append(bias)
        work_w.append(w.reshape(g, -1, *w.shape[3:]).clone())
        work_b.append(bias.reshape(g, -1).clone())
        cout = w.shape[2]
        masks.append(trainable[:, layer].repeat_interleave(cout, dim=1).to(torch.float32))
    frozen = [bool((~trainable[:, layer]).any()) for layer in range(n_layers)]
    leaves_w = [
        [work_w[layer][p].detach().clone().requires_grad_() for layer in range(n_layers)]
        for p in range(g)
    ]
    leaves_b = [
        [work_b[layer][p].detach().clone().requires_grad_() for layer in range(n_layers)]
        for p in range(g)
    ]
    uniq, inv = torch.unique(runs, return_inverse=True)
    sv_w = readout_weight[uniq].clone().requires_grad_()
    sv_b = readout_bias[uniq].clone().requires_grad_()
    sv_w0, sv_b0 = sv_w.detach().clone(), sv_b.detach().clone()
    if shared_update == "mean":
        readout_scale = (1.0 / torch.bincount(inv).to(torch.float32)).view(-1, 1)
    else:
        readout_scale = None
    inv_list = inv.tolist()
    cw_cols = [[cw[p, layer] for layer in range(n_layers)] for p in range(g)]

    n_classes = readout_weight.shape[1]
    logits_all = torch.empty(steps, g, b, n_classes, device=dev)
    y_steps = y_all[batch_index]  # (S, G, B)
    rows_per_step = batch_index.reshape(steps, g * b).unbind(0)
    leaves = [t for p in range(g) for t in (*leaves_w[p], *leaves_b[p])]
    for s in range(steps):
        x = x_all.index_select(0, rows_per_step[s])
        img = as_images(x, c.image_shape, c.input_norm).view(g, b, *_img_dims(c))
        with torch.enable_grad():
            logits = []
            for p in range(g):
                a = img[p]
                for layer in range(n_layers):
                    stride, pool = plan[layer]
                    a = conv_layer(
                        a, leaves_w[p][layer], leaves_b[p][layer], cw_cols[p][layer], stride, pool
                    )
                f = readout_features(a, c.readout_features)
                r = inv_list[p]
                logits.append(torch.addmm(sv_b[r], f, sv_w[r].t()))
            out = torch.stack(logits)  # (G, B, C)
            loss = F.cross_entropy(
                out.view(g * b, n_classes), y_steps[s].reshape(-1), reduction="sum"
            )
            grads = torch.autograd.grad(loss / b, [*leaves, sv_w, sv_b])
        logits_all[s] = out.detach()
        with torch.no_grad():
            for i, (p, layer, is_bias) in enumerate(_leaf_order(g, n_layers)):
                grad = grads[i]
                if frozen[layer]:
                    m = masks[layer][p]
                    grad = grad * (m if is_bias else m.view(-1, 1, 1, 1))
                target = leaves_b[p][layer] if is_bias else leaves_w[p][layer]
                target.sub_(grad, alpha=lr)
            g_w, g_b = grads[-2], grads[-1]
            if readout_scale is not None:
                g_w = g_w * readout_scale.unsqueeze(2)
                g_b = g_b * readout_scale
            sv_w.sub_(g_w, alpha=lr)
            sv_b.sub_(g_b, alpha=lr)

    with torch.no_grad():
        logp = logits_all.log_softmax(-1)
        onehot = F.one_hot(y_steps, n_classes).to(torch.float32)
        loss_sum = -(logp * onehot).sum(-1).sum((0, 2))  # (G,)
        correct = (logits_all.argmax(-1) == y_steps).sum((0, 2))
        for layer in range(n_layers):
            new_w = torch.stack([leaves_w[p][layer] for p in range(g)]).view_as(start_w[layer])
            new_b = torch.stack([leaves_b[p][layer] for p in range(g)]).view_as(start_b[layer])
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
        readout_weight.index_add_(0, uniq, sv_w.detach() - sv_w0)
        readout_bias.index_add_(0, uniq, sv_b.detach() - sv_b0)
    return correct, loss_sum


def _img_dims(c) -> tuple[int, int, int]:
    h, w, ch = c.image_shape
    return ch, h, w


def _leaf_order(g: int, n_layers: int):
    """(path, layer, is_bias) in the order the leaves were listed."""
    for p in range(g):
        for layer in range(n_layers):
            yield p, layer, False
        for layer in range(n_layers):
            yield p, layer, True


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
