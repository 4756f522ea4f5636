"""Newcomer paper cuts in predict: GIFs in folders, a missing GPU."""

from __future__ import annotations

import torch

from pathnet_fer.cli import main
from pathnet_fer.faces.video import iter_frames
from pathnet_fer.predict.inputs import expand_inputs


def test_gifs_in_a_folder_are_found_and_decode(require_data, tmp_path) -> None:
    from PIL import Image

    still = Image.open(require_data("face-media") / "single_face.jpg").convert("RGB")
    still.thumbnail((160, 160))
    flipped = still.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    gif = tmp_path / "clips" / "face.gif"
    gif.parent.mkdir()
    still.save(gif, save_all=True, append_images=[flipped, still], duration=100)
    (tmp_path / "clips" / "notes.txt").write_text("not media")
    found = expand_inputs([tmp_path / "clips"])
    assert found.files == [gif.resolve()]
    frames = list(iter_frames(gif))
    assert len(frames) == 3 and frames[0][2].shape[2] == 3


def test_missing_gpu_is_one_line(tmp_path, capsys) -> None:
    device = "cuda:99" if torch.cuda.is_available() else "cuda"
    model = tmp_path / "model.pt"
    model.write_bytes(b"")
    assert main(["predict", "--model", str(model), "--device", device, "x.mp4"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --device {device}"), err
    assert main(["predict", "--model", str(model), "--device", "tpu", "x.mp4"]) == 1
    assert "is not a device" in capsys.readouterr().err


def test_an_unreadable_sub_folder_is_reported(require_data, tmp_path, monkeypatch) -> None:
    """As root every folder is readable: the denial is simulated where it is observed."""
    import os
    import shutil

    media = tmp_path / "media"
    (media / "locked").mkdir(parents=True)
    shutil.copy(require_data("face-media") / "single_face.jpg", media / "a.jpg")
    shutil.copy(require_data("face-media") / "single_face.jpg", media / "locked" / "b.jpg")
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(media / "locked"):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = expand_inputs([media])
    assert found.files == [(media / "a.jpg").resolve()]
    assert found.problems == [(str(media / "locked"), "folder cannot be read: Permission denied")]
