"""Expected exclusions (contempt, neutral) are counted, not listed file by file."""

from __future__ import annotations

from pathnet_fer.faces.preprocess import preprocess_dataset
from pathnet_fer.faces.settings import FaceSettings
from pathnet_fer.faces.summary import format_summary


def test_contempt_is_counted_not_listed(require_data, tmp_path) -> None:
    root = require_data("ckplus48")
    dataset = preprocess_dataset(
        "ckplus48", root, FaceSettings(size=16), cache_dir=tmp_path, workers=1, progress=False
    )
    text = format_summary(dataset)
    contempt = (dataset.manifest.reason.str.contains("contempt")).sum()
    assert contempt > 0
    assert f"{contempt} of them excluded by the label space, as expected" in text
    assert "/contempt/" not in text, "expected exclusions must not be listed file by file"
    assert (dataset.manifest.reason.str.contains("contempt")).sum() == contempt  # in manifest
