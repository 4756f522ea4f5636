"""The module kinds a ``PathNetConfig.module`` names: linear (the paper's), conv, block.

Each kind builds on ``module_type.ModuleType``; this is the one place that knows them all,
so the base imports none of them.
"""

from __future__ import annotations

from pathnet_fer.pathnet.block_modules import BlockModules
from pathnet_fer.pathnet.config import PathNetConfig
from pathnet_fer.pathnet.conv_modules import ConvModules
from pathnet_fer.pathnet.linear_modules import LinearModules
from pathnet_fer.pathnet.module_type import ModuleType


def module_type_for(config: PathNetConfig) -> ModuleType:
    """The module type named by ``config.module``."""
    if config.module == "conv":
        return ConvModules(config)
    if config.module == "block":
        return BlockModules(config)
    return LinearModules(config)
