"""``pathnet-fer pretrained``: build, describe and check the model the package ships."""

from __future__ import annotations

import argparse
import sys

from pathnet_fer.pretrained import SEEDS, NoShippedModelError, pretrained_path

EPILOG = """\
build: runs configs/pretrained.yaml into --out once per seed (--seeds, default the
shipped model's; resuming: a finished run is not redone), ships the seeds' models as one
(the mean of their calibrated probabilities), scores it (FER-2013 test split, zero-shot
CK+48, JAFFE, CREMA-D) and writes it into the package (src/pathnet_fer/pretrained/
default.pt); then update docs/model-card.md with the figures it prints. One seed
(--seeds 1): that seed's model alone. See docs/model-card.md.

combine: ships files that `build --seeds N` wrote (each one seed, trained anywhere) as
one model, the same as build does with several seeds.

remeasure: writes the shipped file again with another default --prior and every figure
measured again (its network, temperature and mirror setting unchanged; no training).
info: prints the shipped model's summary (= pathnet-fer predict --info) and its file.
check: exit 1 when configs/pretrained.yaml no longer gives the recipe the file records.
"""


def register(sub: argparse._SubParsersAction) -> None:
    from pathnet_fer.yaml_config.options import add_set_option

    p = sub.add_parser(
        "pretrained",
        help="build, describe or check the shipped pretrained model",
        description="The model pathnet-fer predict and evaluate use without --model.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("action", choices=("build", "combine", "remeasure", "info", "check"))
    p.add_argument("members", nargs="*", help="combine: the files of one seed each")
    p.add_argument(
        "--seeds", type=int, nargs="+", default=None, metavar="N",
        help="build: the recipe's seeds to train and ship as one model (default: "
        f"{' '.join(map(str, SEEDS))}, or the one --set seed=N gives; one seed: that seed's "
        "model alone)",
    )  # fmt: skip
    p.add_argument(
        "--config", default="pretrained", help="the recipe (default: configs/pretrained.yaml)"
    )
    add_set_option(p)
    p.add_argument("--out", default="runs/pretrained", help="the study's run directory")
    p.add_argument(
        "--dest", default=None, help="where to write the model (default: into the package)"
    )
    p.add_argument(
        "--model",
        default=None,
        metavar="REL",
        help="ship this model file of the run (relative to --out) instead of the source",
    )
    p.add_argument(
        "--mirror",
        choices=("on", "off"),
        default="on",
        help="ship the model averaging each face with its mirror image, its temperature "
        "fitted again so (default %(default)s)",
    )
    p.add_argument(
        "--prior",
        choices=("uniform", "train"),
        default="uniform",
        help="the class prior the shipped model assumes unless told (default %(default)s: "
        "its training faces' class frequencies divided out; docs/model-card.md)",
    )
    p.add_argument("--restart", action="store_true", help="discard --out and train again")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathnet_fer.pretrained.info import summary

    if args.members and args.action != "combine":
        print(f"error: {args.action} takes no files (only combine does)", file=sys.stderr)
        return 2
    if args.action in ("build", "combine", "remeasure"):
        return _build(args)
    try:
        path = pretrained_path()
        if args.action == "info":
            print(f"{summary(path) or 'no summary in the file'}\n\nfile: {path}")
            return 0
        from pathnet_fer.pretrained.recipe import recipe_differences

        diff = recipe_differences(path, args.config, args.overrides)
    except (NoShippedModelError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if diff:
        print(f"{path} was built from another recipe than {args.config} gives now; rebuild "
              "it (pathnet-fer pretrained build):\n  " + "\n  ".join(diff))  # fmt: skip
        return 1
    print(f"{path} is current: its recorded recipe equals {args.config}")
    return 0


def _build(args: argparse.Namespace) -> int:
    from pathnet_fer.experiments.commands import _errors
    from pathnet_fer.pretrained import build

    try:
        if args.action == "remeasure":
            result = build.remeasure_shipped(args.prior, dest=args.dest)
        elif args.action == "combine":
            if len(args.members) < 2:
                print("error: combine needs the files of two seeds or more", file=sys.stderr)
                return 2
            result = build.combine_built(
                args.members, args.config, args.overrides, dest=args.dest, prior=args.prior
            )
        else:
            seeds = args.seeds
            set_seed = any(o.split("=", 1)[0].strip() == "seed" for o in args.overrides)
            if seeds is not None and set_seed:
                print("error: give the seeds with --seeds or one with --set seed=N, not both",
                      file=sys.stderr)  # fmt: skip
                return 2
            if seeds is None:
                seeds = [] if set_seed else list(SEEDS)
            result = build.build_pretrained(
                args.config,
                args.overrides,
                run_dir=args.out,
                dest=args.dest,
                model=args.model,
                restart=args.restart,
                quiet=args.quiet,
                mirror=args.mirror == "on",
                prior=args.prior,
                seeds=seeds,
            )
    except NoShippedModelError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except _errors() as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print("\n" + result.info["summary"])
    return 0
