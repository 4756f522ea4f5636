"""The convolutional module's arithmetic, shared by evaluation, training and export.

One function per step of a conv path, so the super-network's batched forward, its SGD
step and the exported ``ConvPathModel`` compute exactly the same thing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from pathnet_fer.pathnet.config import PathNetConfig

NORM_EPS = 1e-5


def as_images(x: torch.Tensor, image_shape: tuple[int, int, int], input_norm: str) -> torch.Tensor:
    """Flattened crops ``(n, H*W*C)`` (the crop's own H, W, C layout) -> ``(n, C, H, W)``.

    ``input_norm == "image"``: each image shifted and scaled to zero mean, unit variance.
    """
    h, w, ch = image_shape
    if input_norm == "image":
        x = normalise_rows(x)
    img = x.reshape(x.shape[0], h, w, ch)
    if ch == 1:
        return img.view(x.shape[0], 1, h, w)  # same memory, no copy
    return img.permute(0, 3, 1, 2).contiguous()


def normalise_rows(x: torch.Tensor) -> torch.Tensor:
    """Each row (one image, any layout) to zero mean and unit variance."""
    x = x - x.mean(1, keepdim=True)
    return x / x.std(1, keepdim=True).add_(NORM_EPS)


def warped_images(
    x: torch.Tensor, image_shape: tuple[int, int, int], input_norm: str, warps: torch.Tensor
) -> torch.Tensor:
    """``as_images`` of augmented crops: each flattened crop ``x (n, H*W*C)`` warped by its
    affine matrix ``warps (n, 2, 3)`` (bilinear, edges replicated) BEFORE the input norm,
    so a shifted or rotated face is normalised like any other."""
    img = as_images(x, image_shape, "none")
    grid = F.affine_grid(warps, list(img.shape), align_corners=False)
    img = F.grid_sample(img, grid, mode="bilinear", padding_mode="border", align_corners=False)
    if input_norm == "image":
        n = img.shape[0]
        img = normalise_rows(img.reshape(n, -1)).view_as(img)
    return img


def conv_layer(
    a: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor,
    slot_weight: torch.Tensor,
    stride: int,
    pool: bool,
) -> torch.Tensor:
    """One layer of one path: the N modules as ONE convolution with N*Cout outputs
    (they see the same input), ReLU, the weighted combine over modules (a batched
    GEMV), then an optional 2x2 max-pool.

    ``a (B, Cin, H, W)``; ``weight (N*Cout, Cin, k, k)``; ``bias (N*Cout,)``;
    ``slot_weight (N,)``: 1/k or 1 per distinct module, 0 on duplicate slots.
    """
    k = weight.shape[-1]
    z = F.conv2d(a, weight, bias, stride=stride, padding=k // 2).relu_()
    n_slots = slot_weight.shape[0]
    batch, channels, h, w = z.shape
    cout = channels // n_slots
    out = torch.matmul(slot_weight.view(1, 1, n_slots), z.view(batch, n_slots, cout * h * w))
    out = out.view(batch, cout, h, w)
    return max_pool_2x2(out) if pool else out


def max_pool_2x2(a: torch.Tensor) -> torch.Tensor:
    """2x2 max-pool, stride 2 (odd edges dropped): equal to ``F.max_pool2d(a, 2)``, but
    three elementwise maxima over strided views (~10x faster on the CPU for these maps:
    ``benchmarks/bench_conv_kernels.py``)."""
    h2, w2 = a.shape[-2] // 2 * 2, a.shape[-1] // 2 * 2
    return torch.maximum(
        torch.maximum(a[..., 0:h2:2, 0:w2:2], a[..., 0:h2:2, 1:w2:2]),
        torch.maximum(a[..., 1:h2:2, 0:w2:2], a[..., 1:h2:2, 1:w2:2]),
    )


def readout_features(a: torch.Tensor, mode: str) -> torch.Tensor:
    """The last layer's maps ``(B, C, h, w)`` -> readout input ``(B, F)``."""
    return a.mean((2, 3)) if mode == "avg" else a.flatten(1)


def layer_stride_pool(layer: int, layers: int, downsample: str) -> tuple[int, bool]:
    """Every layer but the last downsamples by 2: stride-2 convs or a max-pool."""
    inner = layer < layers - 1
    return (2 if inner and downsample == "stride" else 1), (inner and downsample == "pool")


def layer_output_maps(config: PathNetConfig) -> list[tuple[int, int]]:
    """(h, w) of each layer's output before pooling (strided layers halve, rounding up),
    for conv and block modules alike."""
    sizes = config.map_sizes()
    out = []
    for layer in range(config.layers):
        stride, _ = layer_stride_pool(layer, config.layers, config.downsample)
        h, w = sizes[layer]
        out.append(((h - 1) // stride + 1, (w - 1) // stride + 1))
    return out
