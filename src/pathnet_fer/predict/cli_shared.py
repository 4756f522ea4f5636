"""What the predict and evaluate commands share: exit codes, --head, --mirror, --prior, the shipped model
when no --model is given, the --device check.
"""

from __future__ import annotations

import argparse
import sys

from pathnet_fer.formats.class_prior import PRIOR_HELP, PRIORS

EXIT_OK = 0
EXIT_FAILED = 1  # model refused, or no input could be processed
EXIT_SOME_SKIPPED = 3  # results written, but some inputs were skipped (listed on stderr)


def add_head_option(p: argparse.ArgumentParser, all_means: str) -> None:
    """``--head NAME|combined|all`` (pathnet/heads_model.py); ``all_means``: what ``all`` does."""
    p.add_argument(
        "--head",
        default="combined",
        metavar="NAME",
        help="a chain's heads model (models/<set>/*_heads.pt) answers as one link (its "
        "dataset's name, e.g. fer2013), as the mean of its calibrated heads (combined, the "
        f"default) or {all_means}; a single-path model has one head",
    )


def add_mirror_option(p: argparse.ArgumentParser) -> None:
    """``--mirror on|off`` (formats/loaded_model.py ``LoadedModel.mirror``); default: the file's."""
    p.add_argument(
        "--mirror",
        choices=("on", "off"),
        default=None,
        help="average each face's logits with its mirror image's (twice the network time; "
        "the shipped model: +0.01 accuracy on FER-2013 test, docs/predict.md); default: "
        "what the model file says (metadata.inference.mirror; the shipped model: on)",
    )


def add_prior_option(p: argparse.ArgumentParser) -> None:
    """``--prior train|uniform`` (formats/class_prior.py); default: the file's."""
    p.add_argument(
        "--prior",
        choices=PRIORS,
        default=None,
        help=f"{PRIOR_HELP}. Default: what the model file says (metadata.inference.prior; "
        "the shipped model: uniform; other files: train)",
    )


def mirror_choice(value: str | None) -> bool | None:
    """``--mirror``'s value as ``LoadedModel.mirrored`` takes it (None: the file's own)."""
    return None if value is None else value == "on"


def model_or_shipped(model: str | None, quiet: bool = False) -> str | None:
    """``model``, else the shipped pretrained model's path, said once on stderr; None
    (after one error line) when there is none."""
    if model is not None:
        return model
    from pathnet_fer.pretrained import NoShippedModelError, pretrained_path

    try:
        path = pretrained_path()
    except NoShippedModelError as error:
        print(f"error: {error}", file=sys.stderr)
        return None
    if not quiet:
        print(
            f"model: the shipped pretrained model {path} (docs/model-card.md; --model FILE "
            "for another)",
            file=sys.stderr,
        )
    return str(path)


def resolve_device(name: str) -> str:
    """The torch device to use; ValueError (one line) for one this machine lacks."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        raise ValueError(
            f"--device {name!r} is not a device (cpu | cuda | cuda:N | auto)"
        ) from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: this machine has no usable CUDA GPU; use --device cpu")
    if device.type == "cuda" and device.index is not None:
        if device.index >= torch.cuda.device_count():
            raise ValueError(
                f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) here"
            )
    return name
