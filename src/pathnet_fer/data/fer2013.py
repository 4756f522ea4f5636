"""FER-2013: 35,887 48x48 grey face images from web search, with a fixed train/test split."""

from __future__ import annotations

from pathlib import Path

from pathnet_fer.data.adapter import DatasetAdapter, ScanBuilder, list_dir, walk_files
from pathnet_fer.data.emotions import canonical_emotion


def _is_label(name: str) -> bool:
    try:
        canonical_emotion(name)
    except KeyError:
        return False
    return True


class Fer2013Adapter(DatasetAdapter):
    """``train|test/<class>/<name>.jpg``; ``split`` = the top folder.

    No subject is known, so every image is its own subject: ``subject = clip =
    <split>/<class>/<stem>`` as written on disk (the stem alone is not unique: two different training images
    share a name in two classes). Use the shipped split, not subject folds.
    A root whose top folders are class names is read as one split-less set (split "").
    """

    name = "fer2013"
    media = "image"
    pre_cropped = True
    description = "FER-2013: 35,887 48x48 grey web images, fixed train/test split, no subjects"
    layout = "<root>/<split>/<class>/<name>.jpg (split train|test; class angry disgust ...)"
    default_folder = "fer2013"

    def _scan(self, root: Path, out: ScanBuilder) -> None:
        files, tops = list_dir(root, out)
        for item in files:
            hint = (
                " (the CSV form of FER-2013 is not read: use the image-folder layout)"
                if item.suffix.lower() == ".csv"
                else ""
            )
            out.skip(item, f"file outside a <split>/<class> folder{hint}")
        if tops and all(_is_label(t.name) for t in tops):
            self._scan_split(root, root, "", out)
            return
        for top in tops:
            self._scan_split(root, top, top.name.lower(), out)

    def _scan_split(self, root: Path, folder: Path, split: str, out: ScanBuilder) -> None:
        files, class_dirs = list_dir(folder, out)
        for item in files if split else []:  # split-less: the root's files are done already
            out.skip(item, f"file outside a class folder of split {split!r}")
        for class_dir in class_dirs:
            label = class_dir.name
            for path in walk_files(class_dir, out):
                if out.stray(path):
                    continue
                clip = path.relative_to(root).with_suffix("").as_posix()
                out.add(path, subject=clip, clip=clip, label=label, split=split)
