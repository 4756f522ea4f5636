"""``pathnet-fer evaluate``: a real model file on the real CREMA-D clips, scores recomputed."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pathnet_fer.cli import main
from pathnet_fer.predict.evaluate import ClassMapping
from predict_support import trained_model

MODEL_CLASSES = ["anger", "disgust", "fear", "happiness", "sadness", "surprise"]


@pytest.fixture(scope="module")
def linear_model(require_data, tmp_path_factory, one_torch_thread):
    require_data("ckplus48")
    return trained_model(tmp_path_factory.mktemp("evaluate-model"))


@pytest.fixture(scope="module")
def evaluated(linear_model, require_data, tmp_path_factory):
    """The command on the six clips (neutral kept: the model has no neutral) and its --out."""
    require_data("crema-d-sample")
    out = tmp_path_factory.mktemp("evaluate-out")
    args = ["evaluate", str(linear_model.path), "--dataset", "crema-d-sample",
            "--keep-neutral", "--workers", "1", "--quiet", "--out", str(out)]  # fmt: skip
    return out, args


def _run(args, capsys):
    status = main(args)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _recomputed_votes(frames: pd.DataFrame) -> pd.DataFrame:
    """Both clip votes from the per-frame rows, written out independently of the code."""
    pcols = [f"p_{c}" for c in MODEL_CLASSES]
    rows = {}
    for clip, part in frames.groupby("clip"):
        counts = part["pred"].value_counts()
        means = part[pcols].mean()
        tied = counts[counts == counts.max()].index
        majority = max(tied, key=lambda c: means[f"p_{c}"])  # ties: higher mean probability
        rows[clip] = {
            "true": part["true"].iloc[0],
            "majority": majority,
            "mean_proba": means.idxmax()[2:],
            "n_frames": len(part),
            "mean_max_proba": part[pcols].max(axis=1).mean(),
        }
    return pd.DataFrame.from_dict(rows, orient="index").sort_index()


def test_evaluate_scores_every_clip_with_both_votes(evaluated, linear_model, capsys):
    out, args = evaluated
    status, printed, err = _run(args, capsys)
    assert status == 0, err
    frames = pd.read_csv(out / "frames.csv")
    clips = pd.read_csv(out / "clips.csv").set_index("clip").sort_index()
    summary = pd.read_csv(out / "summary.csv").iloc[0]

    # Six real clips, each with both votes, every vote an emotion the model has.
    assert len(clips) == 6 and clips["true"].nunique() == 6
    assert set(clips["true"]) == {*MODEL_CLASSES[:5], "neutral"}
    assert clips[["majority", "mean_proba"]].notna().all().all()
    assert set(clips["majority"]) | set(clips["mean_proba"]) <= set(MODEL_CLASSES)

    # The per-frame probabilities are the model's own on the dataset's crops.
    pcols = [f"p_{c}" for c in MODEL_CLASSES]
    np.testing.assert_allclose(frames[pcols].sum(axis=1), 1.0, atol=1e-6)
    assert (frames["pred"] == frames[pcols].idxmax(axis=1).str[2:]).all()
    from pathnet_fer.faces.preprocess import preprocess_dataset
    from pathnet_fer.faces.settings import FaceSettings
    from pathnet_fer.paths import data_root
    from pathnet_fer.predict import load_model

    model = load_model(linear_model.path)
    faces = preprocess_dataset(
        "crema-d",
        data_root() / "crema-d-sample",
        FaceSettings(**{**model.face_settings.to_dict(), "detect": None}),
        keep_neutral=True,
        workers=1,
        progress=False,
    )  # the crops the command made, from the cache
    assert len(frames) == len(faces)
    np.testing.assert_allclose(frames[pcols].to_numpy(), model.predict_proba(faces.images))

    # The per-clip table and the accuracies follow from the per-frame rows.
    expected = _recomputed_votes(frames)
    for column in ("true", "majority", "mean_proba", "n_frames"):
        assert clips[column].tolist() == expected[column].tolist(), column
    np.testing.assert_allclose(clips["mean_max_proba"], expected["mean_max_proba"])
    frame_acc = float((frames["true"] == frames["pred"]).mean())
    majority_right = int((expected["majority"] == expected["true"]).sum())
    mean_right = int((expected["mean_proba"] == expected["true"]).sum())
    assert summary["frame_accuracy"] == pytest.approx(frame_acc)
    assert summary["clip_majority_accuracy"] == pytest.approx(majority_right / 6)
    assert summary["clip_mean_proba_accuracy"] == pytest.approx(mean_right / 6)
    assert summary["frame_confidence"] == pytest.approx(frames["p_max"].mean())
    top = frames["pred"].value_counts()
    assert summary["frame_top_share"] == pytest.approx(top.iloc[0] / len(frames))
    for vote in ("majority", "mean_proba"):  # the collapse check of each vote's own clips
        share = expected[vote].value_counts().iloc[0] / 6
        assert summary[f"clip_{vote}_top_share"] == pytest.approx(share), vote

    # Neutral is no class of the model: always wrong, and said so; surprise has no clip.
    assert not clips.loc[clips["true"] == "neutral", "majority_correct"].any()
    assert summary["not_in_model"] == "neutral" and summary["absent_from_data"] == "surprise"
    assert "Not a class of the model (always counted wrong): neutral (1 clip," in printed
    assert "Absent from the data: surprise." in printed
    assert f"| clip, majority vote | {majority_right / 6:.3f} | {majority_right}/6 |" in printed
    assert f"| clip, mean-proba vote | {mean_right / 6:.3f} | {mean_right}/6 |" in printed
    assert f"| frame | {frame_acc:.3f} | {int((frames.true == frames.pred).sum())}/" in printed
    assert "Collapse check:" in printed and "Calibration: mean max-probability" in printed
    assert (out / "summary.md").read_text().startswith("# Evaluation of")
    # The calibration curve: every frame in one bin, each bin's figures from its frames.
    curve = pd.read_csv(out / "calibration.csv")
    assert curve["n"].sum() == len(frames) and len(curve) == 10
    for row in curve[curve.n > 0].itertuples():
        inside = frames[(frames.p_max > row.low) & (frames.p_max <= row.high)]
        assert len(inside) == row.n
        assert row.accuracy == pytest.approx((inside.true == inside.pred).mean())
    assert (out / "calibration.png").stat().st_size > 5000 and (out / "calibration.pdf").exists()


def test_evaluate_without_neutral_scores_the_five_six_class_clips(evaluated, capsys, tmp_path):
    _, args = evaluated
    args = [a for a in args if a != "--keep-neutral"]
    args[args.index("--out") + 1] = str(tmp_path)
    status, printed, err = _run(args, capsys)
    assert status == 0, err
    clips = pd.read_csv(tmp_path / "clips.csv")
    assert sorted(clips["true"]) == sorted(MODEL_CLASSES[:5])
    assert "Not a class of the model" not in printed


def test_evaluate_takes_a_dataset_from_an_experiment_config(linear_model, capsys, tmp_path):
    status, printed, err = _run(["evaluate", str(linear_model.path), "--dataset", "ckplus48",
                                 "--config", "small", "--set", "faces.margin=0.1", "--workers",
                                 "1", "--quiet", "--out", str(tmp_path)], capsys)  # fmt: skip
    assert status == 0, err
    frames = pd.read_csv(tmp_path / "frames.csv")
    clips = pd.read_csv(tmp_path / "clips.csv")
    assert len(clips) == frames["clip"].nunique() > 300  # CK+48: 3 frames per sequence
    assert (clips["n_frames"] == 3).all()
    assert "Data: ckplus48 (adapter ckplus48" in printed and "margin 0.1" in printed
    assert "the model was trained on ckplus48" in printed  # its figures are not held-out
    assert "margin 0.0 -> 0.1" in printed  # crops unlike the model's training crops


def _relabelled(linear_model, path, metadata):
    """The trained model as if trained on the CREMA-D sample, with run metadata."""
    from pathnet_fer.predict import load_model, save_path_model

    loaded = load_model(linear_model.path)
    return save_path_model(
        path,
        loaded.model,
        class_names=loaded.class_names,
        face_settings=loaded.face_settings,
        dataset="crema-d-sample",
        metadata=metadata,
    )


def test_evaluate_says_a_final_fit_held_out_no_subject(linear_model, evaluated, capsys, tmp_path):
    """A final fit trains on every subject: it has no held-out subjects to be "not
    recorded" (what the note said), and none of its figures is a held-out one."""
    _, args = evaluated
    seen = {"dataset": "crema-d-sample", "faces": 300, "subjects": 6, "adapters": ["crema-d"]}
    final = _relabelled(linear_model, tmp_path / "final.pt", {"final_fit": True,
                        "test_subjects": [], "trained_on": [seen]})  # fmt: skip
    status, printed, err = _run(["evaluate", str(final), *args[2:-1], str(tmp_path / "a")], capsys)
    assert status == 0, err
    (note,) = [line for line in printed.splitlines() if line.startswith("Note: the model")]
    assert "final fit" in note and "every subject of crema-d-sample" in note
    assert "not held-out figures" in note and "not recorded" not in note

    # A fold model whose held-out subjects were too many to list says how many.
    fold = _relabelled(linear_model, tmp_path / "fold.pt", {"final_fit": False,
                       "test_subjects": [], "n_test_subjects": 3589, "trained_on": [seen]})  # fmt: skip
    status, printed, err = _run(["evaluate", str(fold), *args[2:-1], str(tmp_path / "b")], capsys)
    assert status == 0, err
    (note,) = [line for line in printed.splitlines() if line.startswith("Note: the model")]
    assert "3589 held-out subjects" in note and "not recorded" not in note


def test_evaluate_runs_a_conv_model_file(require_data, tmp_path_factory, capsys, tmp_path):
    require_data("ckplus48")
    require_data("crema-d-sample")
    conv = trained_model(tmp_path_factory.mktemp("evaluate-conv"), module="conv")
    status, printed, err = _run(["evaluate", str(conv.path), "--dataset", "crema-d",
                                 "--workers", "1", "--quiet", "--out", str(tmp_path)], capsys)  # fmt: skip
    assert status == 0, err
    assert "pathnet-conv-path" in printed
    clips = pd.read_csv(tmp_path / "clips.csv")
    assert len(clips) == 5 and clips["majority"].isin(MODEL_CLASSES).all()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--dataset", "no-such-data"], "unknown dataset 'no-such-data'"),
        (["--dataset", "crema-d-sample", "--set", "faces.size=64"], "the model expects 48x48"),
        (["--dataset", "nope", "--config", "small"], "not defined under datasets"),
        # evaluate reads a dataset catalog, not a study: a key it does not read is refused,
        # a config's own study sections are skipped, its dataset entries still checked
        (["--dataset", "crema-d-sample", "--set", "seed=3"], "unknown key(s) seed"),
        (
            ["--dataset", "jaffe", "--config", "small", "--set", "faces.marginn=0.1"],
            "unknown key(s) faces.marginn",
        ),
        (
            ["--dataset", "jaffe", "--config", "small", "--set", "datasets.jaffe.folds=odd"],
            "datasets.jaffe.folds must be one of",
        ),
    ],
)
def test_evaluate_refuses_bad_input_in_one_line(linear_model, capsys, tmp_path, extra, message):
    status, _, err = _run(["evaluate", str(linear_model.path), *extra,
                           "--out", str(tmp_path / "out")], capsys)  # fmt: skip
    assert status == 1
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_evaluate_refuses_a_missing_model_file(capsys, tmp_path):
    status, _, err = _run(["evaluate", str(tmp_path / "gone.pt"), "--dataset", "jaffe"], capsys)
    assert status == 1
    assert "model refused: model file" in err and "does not exist" in err


def test_class_mapping_matches_emotions_by_name():
    mapping = ClassMapping.build(
        ["angry", "happy", "surprise"],
        ["anger", "happiness", "neutral", "sadness"],
        present=["anger", "happiness", "neutral"],
    )
    assert mapping.classes == ("angry", "happy", "surprise", "neutral", "sadness")
    assert mapping.labels(np.array([0, 1, 2, 3])).tolist() == [0, 1, 3, 4]
    assert mapping.not_in_model == ("neutral",)
    assert mapping.absent_from_data == ("surprise", "sadness")
    expanded = mapping.expand(np.array([[0.2, 0.5, 0.3]]))
    assert expanded.tolist() == [[0.2, 0.5, 0.3, 0.0, 0.0]]


def test_reliability_table_bins_and_expected_calibration_error():
    from pathnet_fer.scoring.metrics import reliability_table

    confidence = np.array([0.95, 0.95, 0.55, 0.55, 0.55, 0.55])
    correct = np.array([True, True, True, False, False, False])
    table = reliability_table(confidence, correct, bins=10)
    top, middle = table.iloc[9], table.iloc[5]
    assert (top.n, top.accuracy, top.confidence) == (2, 1.0, pytest.approx(0.95))
    assert (middle.n, middle.accuracy) == (4, 0.25)
    # ECE = (2 * |0.95 - 1| + 4 * |0.55 - 0.25|) / 6
    assert table.ece.iloc[0] == pytest.approx((2 * 0.05 + 4 * 0.30) / 6)
