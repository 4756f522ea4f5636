"""PathNet super-network settings (the paper's defaults: L=3, M=20, U=20, N=5)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pathnet_fer.settings_dict import SettingsDict

SHARED_UPDATES = ("sum", "mean")
"""How the paths trained in one call share a module's changes (``evolution.shared_update``):
summed, or averaged (pathnet/linear_sgd.py says why)."""

COMBINE_MODES = ("mean", "sum")
INIT_MODES = ("he-combine", "torch-linear")
MODULE_TYPES = ("linear", "conv", "block")
IMAGE_MODULES = ("conv", "block")  # module types that read a row as an image
BLOCK_CONVS = ("full", "separable")
DOWNSAMPLE_MODES = ("pool", "stride", "none")
READOUT_FEATURES = ("avg", "flatten")
INPUT_NORMS = ("none", "image")  # "auto" resolves to one of these
DEFAULT_CONV_CHANNELS = (8, 16, 32)


@dataclass(frozen=True)
class PathNetConfig(SettingsDict):
    """Shape of the super-network.

    ``input_dim``: flattened input size (48x48 grey crop -> 2304).
    ``layers`` (L), ``modules`` (M per layer), ``units`` (U per module),
    ``max_active`` (N: at most N distinct modules per layer in a path).
    ``combine``: how the outputs of a layer's active modules are merged: ``mean``
    (the paper) or ``sum`` (original PathNet).
    ``init``: ``he-combine`` (default): weights normal with He variance 2/fan_in,
    scaled by N (mean) or 1/N (sum) so that combining N modules keeps the activation
    scale, biases 0 (without it, 3 averaged layers start almost silent and SGD at
    lr 0.02 barely moves: digits stays at chance for 3000 steps);
    ``torch-linear``: ``nn.Linear``'s uniform +-1/sqrt(fan_in). Readouts always use
    ``nn.Linear``'s default.

    ``module``: the module type. ``linear`` (the paper): a module is ``units`` linear
    units + ReLU on the flattened input. ``conv``: a module is a ``kernel`` x ``kernel``
    convolution (same padding) with ``channels[l]`` output channels + ReLU (default
    channels (8, 16, 32) for 3 layers); a layer combines its active modules' maps
    (``combine``), then every layer but the last downsamples by 2 (``downsample``:
    ``pool`` = 2x2 max-pool after the combine, ``stride`` = stride-2 convolutions,
    ``none``); the readout sees the last layer's maps flattened
    (``readout_features: flatten``, default: keeps where on the face a feature is) or
    globally averaged (``avg``). ``units`` is unused by ``conv`` and ``block``.

    ``block`` (docs/pathnet.md, "Block modules"): a module is a small VGG-style block of
    ``block_depth`` (default 2) ``kernel`` x ``kernel`` convolutions with ``channels[l]``
    outputs, each followed by batch normalisation and ReLU (no convolution biases: the
    normalisation's shift replaces them); ``block_conv``: ``full`` convolutions or
    ``separable`` ones (a depthwise ``kernel`` x ``kernel`` convolution then a pointwise
    1x1, as mini-Xception); ``block_residual``: the block's input is added before its
    last ReLU (through a 1x1 convolution + normalisation when the channel count or the
    map size changes). Layers combine and downsample exactly as ``conv`` layers do.
    ``bn_momentum``: how far a training step moves a module's running mean and variance
    towards the minibatch's (PyTorch's convention, default 0.1). A frozen (fixed)
    module always normalises with its stored statistics, and they never change.
    The block settings are unused by the other module types.
    ``image_shape`` (H, W, C): how a flattened input row is read as an image (the
    crop's own layout, channels last); set from the face settings, required for conv.
    ``input_norm``: ``none`` (pixels in [0, 1] as given) or ``image`` (each image is
    shifted and scaled to zero mean and unit variance before the first layer: removes
    exposure and contrast differences between datasets; part of the network, so it is
    stored in every model file); ``auto`` (default) resolves to ``none`` for linear
    modules (the paper) and ``image`` for conv. ``benchmarks/probe_conv_settings.py`` (CK+48,
    one subject split, 20 generations, lr 0.02, one run): flattened readout 0.886
    held-out with ``image``, 0.830 with ``none``; the global-average readout 0.295.
    """

    input_dim: int
    layers: int = 3
    modules: int = 20
    units: int = 20
    max_active: int = 5
    combine: str = "mean"
    init: str = "he-combine"
    module: str = "linear"
    channels: tuple[int, ...] = ()
    kernel: int = 3
    downsample: str = "pool"
    readout_features: str = "flatten"
    image_shape: tuple[int, int, int] | None = None
    input_norm: str = "auto"
    block_depth: int = 2
    block_conv: str = "full"
    block_residual: bool = False
    bn_momentum: float = 0.1

    LATER_FIELDS = ("block_depth", "block_conv", "block_residual", "bn_momentum")

    def __post_init__(self) -> None:
        self._check_module_settings()
        self._check_block_settings()
        for name in ("input_dim", "layers", "modules", "units", "max_active"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"PathNetConfig.{name} must be a positive int, got {value!r}")
        if self.max_active > self.modules:
            raise ValueError(
                f"PathNetConfig.max_active ({self.max_active}) cannot exceed modules ({self.modules})"
            )
        if self.init not in INIT_MODES:
            raise ValueError(f"PathNetConfig.init must be one of {INIT_MODES}, got {self.init!r}")
        if self.combine not in COMBINE_MODES:
            raise ValueError(
                f"PathNetConfig.combine must be one of {COMBINE_MODES}, got {self.combine!r}"
            )

    def _check_module_settings(self) -> None:
        if self.input_norm == "auto":
            image = self.module in IMAGE_MODULES
            object.__setattr__(self, "input_norm", "image" if image else "none")
        for name, allowed in (
            ("module", MODULE_TYPES),
            ("downsample", DOWNSAMPLE_MODES),
            ("readout_features", READOUT_FEATURES),
            ("input_norm", INPUT_NORMS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"PathNetConfig.{name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        # Lists from YAML/JSON become tuples (hashable, frozen).
        channels = tuple(self.channels or ())
        if self.module in IMAGE_MODULES and not channels:
            if self.layers != len(DEFAULT_CONV_CHANNELS):
                raise ValueError(
                    f"PathNetConfig.channels: give one channel count per layer for "
                    f"{self.layers} {self.module} layers (e.g. {[8 * 2**i for i in range(self.layers)]})"
                )
            channels = DEFAULT_CONV_CHANNELS
        if any(not isinstance(v, int) or isinstance(v, bool) or v < 1 for v in channels):
            raise ValueError(f"PathNetConfig.channels must be positive ints, got {channels!r}")
        if self.module in IMAGE_MODULES and len(channels) != self.layers:
            raise ValueError(
                f"PathNetConfig.channels has {len(channels)} entries for {self.layers} layers: "
                "give one channel count per layer"
            )
        object.__setattr__(self, "channels", channels)
        if not isinstance(self.kernel, int) or self.kernel < 1 or self.kernel % 2 == 0:
            raise ValueError(
                f"PathNetConfig.kernel must be an odd positive int, got {self.kernel!r}"
            )
        shape = self.image_shape
        if shape is not None:
            shape = tuple(shape)
            if len(shape) != 3 or any(not isinstance(v, int) or v < 1 for v in shape):
                raise ValueError(
                    f"PathNetConfig.image_shape must be (height, width, channels), got {shape!r}"
                )
            if shape[0] * shape[1] * shape[2] != self.input_dim:
                raise ValueError(
                    f"PathNetConfig.image_shape {shape} holds {shape[0] * shape[1] * shape[2]} "
                    f"values, but input_dim is {self.input_dim}"
                )
            object.__setattr__(self, "image_shape", shape)
        if self.module in IMAGE_MODULES:
            if shape is None:
                raise ValueError(
                    f"PathNetConfig.image_shape (height, width, channels) is required for "
                    f"{self.module} modules: it says how a flattened input row is read as an image"
                )
            side = min(shape[0], shape[1])
            factor = 1 if self.downsample == "none" else 2 ** (self.layers - 1)
            if side < factor:
                raise ValueError(
                    f"PathNetConfig: {self.layers} conv layers downsampling by 2 need images "
                    f"of at least {factor}x{factor} pixels, got {shape[0]}x{shape[1]}"
                )

    def _check_block_settings(self) -> None:
        depth = self.block_depth
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
            raise ValueError(f"PathNetConfig.block_depth must be a positive int, got {depth!r}")
        if self.block_conv not in BLOCK_CONVS:
            raise ValueError(
                f"PathNetConfig.block_conv must be one of {BLOCK_CONVS}, got {self.block_conv!r}"
            )
        if not isinstance(self.block_residual, bool):
            raise ValueError(
                f"PathNetConfig.block_residual must be true/false, got {self.block_residual!r}"
            )
        m = self.bn_momentum
        if isinstance(m, bool) or not isinstance(m, int | float) or not 0.0 < m <= 1.0:
            raise ValueError(f"PathNetConfig.bn_momentum must be in (0, 1], got {m!r}")

    @property
    def image_modules(self) -> bool:
        """True when a module reads its input as an image (conv and block modules)."""
        return self.module in IMAGE_MODULES

    def to_dict(self) -> dict[str, Any]:
        """Plain lists for the tuples (YAML and safe loaders take them)."""
        out = super().to_dict()
        out["channels"] = list(self.channels)
        out["image_shape"] = None if self.image_shape is None else list(self.image_shape)
        return out

    def layer_input_dims(self) -> list[int]:
        """Input size of each layer's modules: the data, then the previous layer's units
        (conv, block: input channels)."""
        if self.module in IMAGE_MODULES:
            assert self.image_shape is not None
            return [self.image_shape[2], *self.channels[:-1]]
        return [self.input_dim] + [self.units] * (self.layers - 1)

    def layer_output_sizes(self) -> list[int]:
        """Outputs of one module per layer: units (linear) or channels (conv, block)."""
        return list(self.channels) if self.module in IMAGE_MODULES else [self.units] * self.layers

    def map_sizes(self) -> list[tuple[int, int]]:
        """Conv: (H, W) of each layer's input map, then of the last layer's output."""
        assert self.image_shape is not None
        return conv_map_sizes(self.image_shape[:2], self.layers, self.downsample)

    def feature_dim(self) -> int:
        """Width of the readout's input."""
        if self.module not in IMAGE_MODULES:
            return self.units
        if self.readout_features == "avg":
            return self.channels[-1]
        h, w = self.map_sizes()[-1]
        return self.channels[-1] * h * w


def conv_map_sizes(
    image_hw: tuple[int, int], layers: int, downsample: str
) -> list[tuple[int, int]]:
    """(H, W) of each conv layer's input map, then of the last layer's output: every
    layer but the last halves the map (``pool``: floor, ``stride``: ceil; ``none``: kept)."""
    h, w = image_hw
    sizes = [(h, w)]
    for layer in range(layers):
        if downsample != "none" and layer < layers - 1:
            h, w = (h // 2, w // 2) if downsample == "pool" else ((h + 1) // 2, (w + 1) // 2)
        sizes.append((h, w))
    return sizes


def config_differences(a: dict[str, Any], b: dict[str, Any]) -> list[str]:
    """Human-readable ``field: a != b`` lines for two config dicts (for refusal messages)."""
    out = []
    for key in sorted(set(a) | set(b)):
        if a.get(key, "<missing>") != b.get(key, "<missing>"):
            out.append(f"{key}: {a.get(key, '<missing>')!r} != {b.get(key, '<missing>')!r}")
    return out
