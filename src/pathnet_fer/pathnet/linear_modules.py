"""Linear modules (the paper): ``units`` linear units + ReLU on the flattened input.

``weights[l]`` is ``(R, M, U, in_l)`` (the ``nn.Linear`` out x in layout, so gathering N
modules gives a contiguous ``(N*U, in_l)`` matrix), ``biases[l]`` is ``(R, M, U)``.
Training uses the hand-written batched forward/backward of ``linear_sgd``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from pathnet_fer.pathnet.genotype import slot_weights
from pathnet_fer.pathnet.linear_path_model import PathModel
from pathnet_fer.pathnet.linear_sgd import train_paths as train_linear_paths
from pathnet_fer.pathnet.module_type import ModuleType

if TYPE_CHECKING:
    from pathnet_fer.pathnet.linear_path_model import PathModel

EVAL_CHUNK = 4096  # rows per forward chunk when evaluating (bounds memory)


class LinearModules(ModuleType):
    name = "linear"

    def weight_shape(self, layer: int) -> tuple[int, ...]:
        return (self.config.units, self.config.layer_input_dims()[layer])

    def bias_shape(self, layer: int) -> tuple[int, ...]:
        return (self.config.units,)

    def fan_in(self, layer: int) -> int:
        return self.config.layer_input_dims()[layer]

    def flops_per_sample(self, paths: int = 1) -> int:
        c = self.config
        return 2 * c.max_active * c.units * sum(c.layer_input_dims()) * paths

    @torch.no_grad()
    def forward_paths(self, net, x, paths, readout_weight, readout_bias, run):
        """When the paths together touch most of the first layer, its M modules are
        applied once and shared by all paths (cheaper than gathering per path); otherwise
        each path gathers only its modules."""
        c = self.config
        paths = paths.to(net.device)
        n_paths = paths.shape[0]
        cw = slot_weights(paths, c.combine)  # (P, L, N)
        out = []
        share_first = n_paths * c.max_active >= c.modules
        for start in range(0, x.shape[0], EVAL_CHUNK):
            xb = x[start : start + EVAL_CHUNK]
            n = xb.shape[0]
            if share_first:
                w0 = net.weights[0][run].reshape(c.modules * c.units, c.input_dim)
                z = torch.addmm(net.biases[0][run].reshape(-1), xb, w0.t()).relu_()
                z = z.view(n, c.modules, c.units)[:, paths[:, 0]]  # (n, P, N, U)
                a = torch.einsum("npku,pk->pnu", z, cw[:, 0])
            else:
                a = self._layer(
                    net, xb.expand(n_paths, n, c.input_dim), paths[:, 0], cw[:, 0], 0, run
                )
            for layer in range(1, c.layers):
                a = self._layer(net, a, paths[:, layer], cw[:, layer], layer, run)
            out.append(
                torch.baddbmm(
                    readout_bias.unsqueeze(0).unsqueeze(0).expand(n_paths, 1, -1),
                    a,
                    readout_weight.t().unsqueeze(0).expand(n_paths, -1, -1),
                )
            )
        return torch.cat(out, dim=1)

    def _layer(self, net, a, idx, cw, layer, run):
        """One layer for P paths: ``a (P, n, in)``, module indices ``idx (P, N)``."""
        c = self.config
        n_paths, n, _ = a.shape
        w = net.weights[layer][run][idx].reshape(n_paths, c.max_active * c.units, -1)
        b = net.biases[layer][run][idx].reshape(n_paths, 1, -1)
        z = torch.baddbmm(b, a, w.transpose(1, 2)).relu_().view(n_paths, n, c.max_active, c.units)
        return torch.einsum("pnku,pk->pnu", z, cw)

    train_paths = staticmethod(train_linear_paths)

    def path_model(self, net, genotype, readout_weight, readout_bias, run, task_name) -> PathModel:

        return PathModel.from_pathnet(
            net, genotype, readout_weight, readout_bias, run=run, task_name=task_name
        )
