"""Progressive Neural Networks (Rusu et al. 2016; Gideon et al. 2017 for emotion).

One column per task. A new column is an MLP the size of one PathNet path (L layers of
N x U units, as ``mlp.py``) whose layer i > 0 also receives the previous layer's
activations of every earlier column through a lateral adapter (Rusu et al.'s
non-linear adapter): ``U relu(V (alpha * h_prev))`` with a learned scalar ``alpha``, a
projection ``V`` down to ``adapter_width`` units (one PathNet module's width, U = 20) and
``U`` back up. The readout gets the same lateral input. Earlier columns, their adapters
and readouts are frozen when a column is added, so what they learned is never forgotten
(tests check they stay bit-identical).
"""

from __future__ import annotations

import torch
from torch import nn


class LateralAdapter(nn.Module):
    """Rusu et al.'s adapter from earlier columns' activations into one layer."""

    def __init__(self, in_width: int, adapter_width: int, out_width: int) -> None:
        super().__init__()
        # alpha scales old features down so they do not swamp the new column at first.
        self.alpha = nn.Parameter(torch.tensor([0.1]))
        self.down = nn.Linear(in_width, adapter_width)
        self.up = nn.Linear(adapter_width, out_width, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(torch.relu(self.down(self.alpha * h)))


class Column(nn.Module):
    """One task's column: layers, lateral adapters (from column 2 on) and a readout."""

    def __init__(
        self,
        input_dim: int,
        n_classes: int,
        layers: int,
        width: int,
        earlier: int,
        adapter_width: int,
    ) -> None:
        super().__init__()
        dims = [input_dim] + [width] * layers
        self.layers = nn.ModuleList(nn.Linear(dims[i], dims[i + 1]) for i in range(layers))
        self.readout = nn.Linear(width, n_classes)
        # adapters[i] feeds layer i+1 (i < layers-1) and the readout (i = layers-1).
        self.adapters = (
            nn.ModuleList(
                LateralAdapter(
                    earlier * width, adapter_width, width if i < layers - 1 else n_classes
                )
                for i in range(layers)
            )
            if earlier
            else nn.ModuleList()
        )


class ProgressiveNet(nn.Module):
    """A growing list of columns; ``forward(x, column)`` predicts for that column's task."""

    def __init__(self, input_dim: int, layers: int = 3, width: int = 100, adapter_width: int = 20):
        super().__init__()
        self.input_dim, self.n_layers, self.width, self.adapter_width = (
            input_dim,
            layers,
            width,
            adapter_width,
        )
        self.columns = nn.ModuleList()

    def add_column(self, n_classes: int) -> int:
        """Freeze every existing column and append a new trainable one; return its index."""
        for p in self.columns.parameters():
            p.requires_grad_(False)
        self.columns.append(
            Column(
                self.input_dim,
                n_classes,
                self.n_layers,
                self.width,
                len(self.columns),
                self.adapter_width,
            )
        )
        return len(self.columns) - 1

    def forward(self, x: torch.Tensor, column: int = -1) -> torch.Tensor:
        if not len(self.columns):
            raise RuntimeError("ProgressiveNet has no column yet: call add_column(n_classes)")
        last = column % len(self.columns)
        hidden: list[list[torch.Tensor]] = []  # hidden[c][i]: column c's layer-i activation
        for c in range(last + 1):
            col = self.columns[c]
            acts: list[torch.Tensor] = []
            h = x
            for i, layer in enumerate(col.layers):
                z = layer(h)
                if c and i:
                    z = z + col.adapters[i - 1](torch.cat([hidden[k][i - 1] for k in range(c)], 1))
                h = torch.relu(z)
                acts.append(h)
            hidden.append(acts)
        col = self.columns[last]
        out = col.readout(hidden[last][-1])
        if last:
            out = out + col.adapters[-1](torch.cat([hidden[k][-1] for k in range(last)], 1))
        return out

    def column_model(self, column: int) -> nn.Module:
        """A module whose forward predicts for ``column`` (what SGD and predict_proba take)."""
        return _ColumnView(self, column)


class _ColumnView(nn.Module):
    def __init__(self, net: ProgressiveNet, column: int) -> None:
        super().__init__()
        self.net, self.column = net, column

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, self.column)
