"""The path-sized CNN baselines on real crops: a FER-2013 slice as the source of JAFFE.

``cnn-scratch``, ``cnn-head``, ``cnn-full`` and ``cnn-zeroshot`` (and ``mlp-finetune`` /
``mlp-zeroshot``) in metrics.csv per fold; zero-shot = the saved source model applied to
the held-out faces with classes matched by name; one source model per iteration for a
fixed-split source (per fold for a same-dataset one), reused from the run dir on a rerun
and retrained when a setting changes; head-only fine-tuning leaves the conv layers
bit-identical, full fine-tuning changes them.
"""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest
import torch
import yaml

pytestmark = pytest.mark.usefixtures("one_torch_thread")

FER_JAFFE, JAFFE_JAFFE = "fer2013->jaffe", "jaffe->jaffe"
OVERRIDES = [
    f"sets=[{{name: '{FER_JAFFE}', source: fer2013, destination: jaffe}}, "
    f"{{name: '{JAFFE_JAFFE}', source: jaffe, destination: jaffe}}]",
    "datasets.jaffe.keep_neutral=true",  # JAFFE's neutral faces: a class FER-2013 lacks here
    "faces.size=24",
    "pathnet.module=conv",
    "pathnet.channels=[4,8,8]",
    "pathnet.modules=4",
    "pathnet.max_active=2",
    "evolution.generations=2",
    "evolution.minibatches=5",  # a generation = 2 x 5 x 16 = 160 samples
    "protocol.source_generations=3",
    "protocol.folds=2",
    "protocol.iterations=1",
    "protocol.max_source_frames=600",
    "logging.progress=false",
]
CNN_ARMS = ("cnn-scratch", "cnn-head", "cnn-full", "cnn-zeroshot")
ARMS = (*CNN_ARMS, "mlp-scratch", "mlp-finetune", "mlp-zeroshot")


def _fer_slice(config):
    """800 training and 100 test faces of FER-2013 (its fixed split), preprocessed like
    the rest; its classes listed in REVERSED order, so only a by-name mapping is right."""
    from pathnet_fer.data.registry import get_adapter
    from pathnet_fer.datasets.loading import LoadedDataset, face_settings_for
    from pathnet_fer.faces.preprocess import preprocess_samples

    adapter = get_adapter("fer2013")
    samples = adapter.scan(config.dataset_root("fer2013")).samples
    rng = np.random.default_rng(0)
    pick = [rng.choice(np.flatnonzero(samples.split == side), n, replace=False)
            for side, n in (("train", 800), ("test", 100))]  # fmt: skip
    rows = samples.iloc[np.sort(np.concatenate(pick))].reset_index(drop=True)
    settings = face_settings_for(config, "fer2013").resolved(bool(adapter.pre_cropped))
    faces = preprocess_samples(rows, "fer2013", settings, workers=1, progress=False)
    names = tuple(faces.class_names)
    y = np.asarray(faces.labels, dtype=np.int64)
    return LoadedDataset(
        "fer2013", faces, np.ascontiguousarray(faces.features()), len(names) - 1 - y,
        np.asarray(faces.subjects).astype(str), np.asarray(faces.clips).astype(str), names[::-1],
    )  # fmt: skip


def _run(config, data, out, models, counter=None, captured=None, sets=None):
    from pathnet_fer.baselines import jobs, source_models
    from pathnet_fer.baselines.runner import run_baselines
    from pathnet_fer.baselines.settings import BaselineSettings

    settings = BaselineSettings.from_dict(
        {"models": models, "max_samples": 480, **({"sets": sets} if sets else {})}
    )
    with pytest.MonkeyPatch.context() as patch:
        if counter is not None:
            real = source_models.train_source

            def counting(model, x, y, samples, **sgd):
                counter.append(len(y))
                return real(model, x, y, samples, **sgd)

            patch.setattr(source_models, "train_source", counting)
        if captured is not None:
            real_arm = jobs.train_source_arm

            def capture(arm, ctx, *args, **kw):
                out_ = real_arm(arm, ctx, *args, **kw)
                captured[(ctx.experiment, ctx.fold, arm)] = out_[0]
                return out_

            patch.setattr(jobs, "train_source_arm", capture)
        return run_baselines(config, settings, out, datasets=data, progress=None)


@pytest.fixture(scope="module")
def study(tmp_path_factory, require_data):
    require_data("fer2013")
    require_data("jaffe")
    from pathnet_fer.datasets.loading import load_dataset
    from pathnet_fer.experiments.config_loading import load_config

    config = load_config("fer2013-transfer", OVERRIDES)
    data = {"fer2013": _fer_slice(config), "jaffe": load_dataset(config, "jaffe", workers=1)}
    out = tmp_path_factory.mktemp("cnn-baselines")
    calls: list[int] = []
    models: dict = {}
    metrics = _run(config, data, out, "cnn,mlp,mlp-zeroshot", calls, models)
    return dict(config=config, data=data, out=out, metrics=metrics, calls=calls, models=models)


def _sources(out, experiment, kind):
    record = yaml.safe_load((out / "baselines_config.yaml").read_text())["source_models"]
    return [(key, r) for key, r in record.items()
            if r["experiment"] == experiment and r["kind"] == kind]  # fmt: skip


def _frame(metrics, experiment, arm, metric="accuracy"):
    sel = metrics[(metrics.experiment == experiment) & (metrics.arm == arm)
                  & (metrics.split == "test") & (metrics.level == "frame")
                  & (metrics.metric == metric)]  # fmt: skip
    return dict(zip(sel.fold, sel.value, strict=True))


def test_every_arm_has_held_out_rows_per_fold(study):
    metrics = study["metrics"]
    assert set(ARMS) <= set(metrics.arm)
    test = metrics[metrics.split == "test"]
    for experiment in (FER_JAFFE, JAFFE_JAFFE):
        for arm in ARMS:
            rows = test[(test.experiment == experiment) & (test.arm == arm)]
            assert set(rows.fold) == {1, 2}, (experiment, arm)
            assert len(rows) == 2 * 9, (experiment, arm)  # 4 metrics x 2 levels + confidence
            assert rows.value.between(0, 1).all()
    # Same-sized conv layers for every CNN arm: 4x2=8, 8x2=16, 8x2=16 channels of 3x3 on
    # 24x24 crops, then a 7-way readout on 6x6x16 flattened maps (6-way at the source).
    params = metrics[(metrics.metric == "parameters") & (metrics.experiment == FER_JAFFE)]
    by_arm = dict(zip(params.arm, params.value, strict=False))
    convs = (1 * 8 * 9 + 8) + (8 * 16 * 9 + 16) + (16 * 16 * 9 + 16)
    assert by_arm["cnn-scratch"] == by_arm["cnn-head"] == convs + 7 * (16 * 36 + 1)
    assert by_arm["cnn-zeroshot"] == convs + 6 * (16 * 36 + 1)
    summary = (study["out"] / "summary.md").read_text()
    assert all(arm in summary for arm in ARMS)


def test_zero_shot_is_the_source_model_with_classes_mapped_by_name(study):
    from sklearn.metrics import f1_score, recall_score

    from pathnet_fer.baselines.mlp import MLP
    from pathnet_fer.baselines.path_cnn import PathCNN, PathCNNConfig
    from pathnet_fer.baselines.source_models import load_source_state
    from pathnet_fer.experiments.datasets import dataset_folds

    config, data, out = study["config"], study["data"], study["out"]
    jaffe, fer = data["jaffe"], data["fer2013"]
    assert jaffe.class_names[-1] == "neutral" and "neutral" not in fer.class_names
    to_source = [list(fer.class_names).index(n) if n in fer.class_names else -1
                 for n in jaffe.class_names]  # fmt: skip
    assert to_source[:6] == [5, 4, 3, 2, 1, 0]  # reversed: an index reading would be wrong
    folds = dataset_folds(config, "jaffe", jaffe)
    for kind, arm in (("cnn", "cnn-zeroshot"), ("mlp", "mlp-zeroshot")):
        (key, record), *more = _sources(out, FER_JAFFE, kind)
        assert not more and record["folds"] == "all"
        saved = load_source_state(out / "source_models" / record["file"])
        if kind == "cnn":
            shape = saved["describe"]["model"]
            model = PathCNN(PathCNNConfig(**{**shape, "image_shape": tuple(shape["image_shape"]),
                                              "channels": tuple(shape["channels"])}), 6)  # fmt: skip
        else:
            shape = saved["describe"]["model"]
            model = MLP(shape["input_dim"], 6, shape["layers"], shape["width"])
        model.load_state_dict(saved["state_dict"])
        model.eval()
        reported = {m: _frame(study["metrics"], FER_JAFFE, arm, m)
                    for m in ("accuracy", "macro_f1", "uar", "confidence")}  # fmt: skip
        for fold in folds:
            x, y = jaffe.x[fold.test_index], jaffe.y[fold.test_index]
            with torch.no_grad():
                proba = model(torch.as_tensor(x)).softmax(1).double().numpy()
            # JAFFE class d <- the FER-2013 class of the same name; neutral: none (p = 0).
            mapped = np.stack([proba[:, s] if s >= 0 else np.zeros(len(x)) for s in to_source], 1)
            mapped /= mapped.sum(1, keepdims=True)
            pred = mapped.argmax(1)
            assert not (pred == 6).any() and (y == 6).any()  # neutral faces: always wrong
            expected = {
                "accuracy": np.mean(pred == y),
                "macro_f1": f1_score(y, pred, average="macro", zero_division=0),
                "uar": recall_score(y, pred, labels=np.unique(y), average="macro", zero_division=0),
                "confidence": mapped.max(1).mean(),
            }
            for metric, value in expected.items():
                assert reported[metric][fold.index + 1] == pytest.approx(value, abs=1e-5), metric


def test_zero_shot_mapping_drops_source_only_classes():
    from pathnet_fer.baselines.path_cnn import class_map, zero_shot_proba

    source = ("neutral", "happiness", "anger")
    dest = ("anger", "disgust", "happiness")
    assert class_map(source, dest).tolist() == [2, -1, 1]
    proba = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8]])
    out = zero_shot_proba(proba, source, dest)
    np.testing.assert_allclose(out, [[1 / 3, 0, 2 / 3], [0.8 / 0.9, 0, 0.1 / 0.9]], rtol=1e-6)
    with pytest.raises(ValueError, match="share no emotion"):
        zero_shot_proba(proba, source, ("fear", "surprise"))


def test_source_trained_once_for_both_folds_reused_on_rerun_retrained_on_change(study, tmp_path):
    out, config, data = study["out"], study["config"], study["data"]
    # FER-2013 (one fixed fold): one model per kind for both JAFFE folds, on the 600
    # capped rows; JAFFE -> JAFFE (its fold's test subjects excluded): one per fold.
    assert sorted(study["calls"]).count(600) == 2 and len(study["calls"]) == 2 + 2 * 2
    for kind in ("cnn", "mlp"):
        (key, record), *more = _sources(out, FER_JAFFE, kind)
        assert not more and record["rows"] == 600 and record["status"] == "trained"
        assert sorted(r["folds"] for _, r in _sources(out, JAFFE_JAFFE, kind)) == [1, 2]
    files = sorted(p.name for p in (out / "source_models").glob("*.pt"))
    assert len(files) == 6
    first = {
        arm: _frame(study["metrics"], FER_JAFFE, arm) for arm in ("cnn-zeroshot", "mlp-zeroshot")
    }
    # The same command again (in a copy of the run, its metrics gone): the saved source
    # models are loaded, nothing is trained, the zero-shot figures are the same.
    work = tmp_path / "rerun"
    shutil.copytree(out, work)
    (work / "metrics.csv").unlink()
    calls: list[int] = []
    again = _run(config, data, work, "cnn-zeroshot,mlp-zeroshot", calls, sets=[FER_JAFFE])
    assert calls == []
    assert {arm: _frame(again, FER_JAFFE, arm) for arm in first} == first
    assert {r["status"] for _, r in _sources(work, FER_JAFFE, "cnn")} == {"saved"}
    # A changed source budget (3 -> 2 generations): another key, trained again, once.
    (work / "metrics.csv").unlink()
    protocol = dataclasses.replace(config.protocol, source_generations=2)
    changed = dataclasses.replace(config, protocol=protocol)
    _run(changed, data, work, "cnn-zeroshot,mlp-zeroshot", calls, sets=[FER_JAFFE])
    assert calls == [600, 600]
    assert len(list((work / "source_models").glob("*.pt"))) == 8


def test_head_keeps_pretrained_conv_layers_full_changes_them(study):
    from pathnet_fer.baselines.source_models import load_source_state

    out, models = study["out"], study["models"]
    for experiment in (FER_JAFFE, JAFFE_JAFFE):
        for fold in (1, 2):
            (_, record), *_ = [(k, r) for k, r in _sources(out, experiment, "cnn")
                               if r["folds"] in ("all", fold)]  # fmt: skip
            source = load_source_state(out / "source_models" / record["file"])["state_dict"]
            head = models[(experiment, fold, "cnn-head")].state_dict()
            full = models[(experiment, fold, "cnn-full")].state_dict()
            convs = [k for k in source if k.startswith("convs.")]
            assert len(convs) == 6
            for k in convs:
                assert torch.equal(head[k].cpu(), source[k]), (experiment, fold, k)
                assert not torch.equal(full[k].cpu(), source[k]), (experiment, fold, k)
            # Both trained a new 7-way readout (the source's was 6-way).
            assert head["readout.weight"].shape[0] == full["readout.weight"].shape[0] == 7
