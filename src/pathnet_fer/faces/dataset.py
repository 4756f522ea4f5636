"""FaceDataset: labelled face crops, one row per crop, plus the per-clip manifest."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from pathnet_fer.faces.cache import _atomic_write
from pathnet_fer.faces.settings import FaceSettings

FRAME_COLUMNS = ("clip", "subject", "emotion", "label", "frame_index", "fallback")
BOX_COLUMNS = ("x", "y", "w", "h")  # the face region in the full-resolution frame
MANIFEST_COLUMNS = (
    "path", "clip", "subject", "emotion", "status", "reason",
    "n_frames", "n_detections", "n_fallback", "n_crops",
)  # fmt: skip


@dataclass
class BuildReport:
    """What building or loading a dataset did (evidence that the cache was used)."""

    processed: int = 0  # clips decoded in this call
    from_cache: int = 0  # clips read back from per-clip cache entries
    consolidated: bool = False  # True: everything came from the consolidated file
    seconds: float = 0.0
    cache_dir: str = ""
    workers: int = 1
    worker_deaths: int = 0  # worker processes that died (their files were retried)
    warnings: list[str] = field(default_factory=list)  # dataset-level, from the scan


@dataclass
class FaceDataset:
    """Face crops of one dataset under one set of settings.

    - ``images``: uint8 ``(n, size, size)`` grey or ``(n, size, size, 3)`` rgb.
    - ``frames``: DataFrame aligned with ``images``, columns ``clip, subject, emotion,
      label`` (int index into ``class_names``), ``frame_index`` (position in the clip),
      ``fallback`` (True: the previous face region was reused for this frame), and
      ``x, y, w, h``: the face box in the original frame (the whole image when detection
      is off).
    - ``manifest``: one row per clip/image (including skipped ones): ``path, clip,
      subject, emotion, status`` ("ok" | "skipped"), ``reason, n_frames, n_detections,
      n_fallback, n_crops``.
    """

    images: np.ndarray
    frames: pd.DataFrame
    manifest: pd.DataFrame
    class_names: tuple[str, ...]
    settings: FaceSettings
    name: str
    report: BuildReport = field(default_factory=BuildReport)

    def __post_init__(self) -> None:
        if len(self.images) != len(self.frames):
            raise ValueError(f"{len(self.images)} images but {len(self.frames)} frame rows")

    def __len__(self) -> int:
        return len(self.images)

    def __repr__(self) -> str:
        ok = int((self.manifest["status"] == "ok").sum()) if len(self.manifest) else 0
        return (
            f"FaceDataset({self.name!r}, {len(self)} crops of {self.images.shape[1:]}, "
            f"{ok} clips ok, {len(self.manifest) - ok} skipped, classes={list(self.class_names)})"
        )

    # ---- arrays for training -------------------------------------------------------------
    def features(self) -> np.ndarray:
        """float32 ``(n, size*size*channels)`` in [0, 1]: the flattened crops (PathNet input)."""
        flat = self.images.reshape(len(self.images), -1)
        return flat.astype(np.float32) * np.float32(1.0 / 255.0)

    @property
    def labels(self) -> np.ndarray:
        return self.frames["label"].to_numpy(dtype=np.int64)

    @property
    def subjects(self) -> np.ndarray:
        return self.frames["subject"].to_numpy(dtype=str)

    @property
    def clips(self) -> np.ndarray:
        return self.frames["clip"].to_numpy(dtype=str)

    @property
    def fallback(self) -> np.ndarray:
        return self.frames["fallback"].to_numpy(dtype=bool)

    def subset(self, selection: np.ndarray | list | pd.Series) -> FaceDataset:
        """Rows selected by a boolean mask or integer indices; the manifest keeps the clips
        that still have crops, plus every skipped clip (they stay on record)."""
        selection = np.asarray(selection)
        if selection.dtype == bool:
            if len(selection) != len(self):
                raise ValueError(f"mask of length {len(selection)} for {len(self)} rows")
            index = np.flatnonzero(selection)
        else:
            index = selection.astype(np.int64)
        frames = self.frames.iloc[index].reset_index(drop=True)
        kept = set(frames["clip"])
        manifest = self.manifest[
            self.manifest["clip"].isin(kept) | (self.manifest["status"] != "ok")
        ].reset_index(drop=True)
        return FaceDataset(
            images=self.images[index],
            frames=frames,
            manifest=manifest,
            class_names=self.class_names,
            settings=self.settings,
            name=self.name,
            report=self.report,
        )

    @classmethod
    def pooled(
        cls, parts: dict[str, FaceDataset], name: str, settings: FaceSettings
    ) -> FaceDataset:
        """One dataset of several (a union): crops in order, ``clip`` and ``subject``
        prefixed ``<part>/`` so two datasets' people or clips never share a name."""
        first = next(iter(parts.values()))
        for part, faces in parts.items():
            if faces.class_names != first.class_names:
                raise ValueError(
                    f"{name}: {part} has classes {list(faces.class_names)} but "
                    f"{first.name} {list(first.class_names)}; a union needs the same emotions"
                )
            if faces.images.shape[1:] != first.images.shape[1:]:
                raise ValueError(
                    f"{name}: {part} crops are {faces.images.shape[1:]}, "
                    f"{first.name} crops {first.images.shape[1:]}"
                )

        def prefixed(table: pd.DataFrame, part: str) -> pd.DataFrame:
            table = table.copy()
            for column in ("clip", "subject"):
                table[column] = part + "/" + table[column].astype(str)
            return table

        return cls(
            images=np.concatenate([f.images for f in parts.values()]),
            frames=pd.concat([prefixed(f.frames, p) for p, f in parts.items()], ignore_index=True),
            manifest=pd.concat(
                [prefixed(f.manifest, p) for p, f in parts.items()], ignore_index=True
            ),
            class_names=first.class_names,
            settings=settings,
            name=name,
        )

    def class_counts(self) -> pd.Series:
        """Crops per class name (zeros included)."""
        counts = np.bincount(self.labels, minlength=len(self.class_names))
        return pd.Series(counts, index=list(self.class_names), name="crops")

    # ---- persistence ---------------------------------------------------------------------
    def save(self, images_path: Path, manifest_path: Path) -> None:
        """Write the consolidated crops (npz) and the manifest (CSV), each atomically."""

        clip_codes, clip_names = pd.factorize(self.frames["clip"], sort=False)
        meta = pd.DataFrame({"clip": clip_names})
        meta = meta.merge(
            self.frames.drop_duplicates("clip")[["clip", "subject", "emotion", "label"]],
            on="clip",
            how="left",
        )
        arrays = {
            "images": self.images,
            "clip_code": clip_codes.astype(np.int32),
            "frame_index": self.frames["frame_index"].to_numpy(dtype=np.int32),
            "fallback": self.frames["fallback"].to_numpy(dtype=bool),
            "boxes": self.frames[list(BOX_COLUMNS)].to_numpy(dtype=np.int32).reshape(-1, 4),
            "clip_names": meta["clip"].to_numpy(dtype=str),
            "clip_subjects": meta["subject"].to_numpy(dtype=str),
            "clip_emotions": meta["emotion"].to_numpy(dtype=str),
            "clip_labels": meta["label"].to_numpy(dtype=np.int64),
            "class_names": np.array(self.class_names, dtype=str),
        }
        _atomic_write(images_path, lambda s: np.savez_compressed(s, **arrays))
        _atomic_write(manifest_path, lambda s: self.manifest.to_csv(s, index=False))

    @classmethod
    def load(
        cls, images_path: Path, manifest_path: Path, settings: FaceSettings, name: str
    ) -> FaceDataset:
        """Inverse of :meth:`save` (raises OSError/ValueError/KeyError when unreadable)."""
        with np.load(images_path, allow_pickle=False) as data:
            codes = data["clip_code"]
            frames = pd.DataFrame(
                {
                    "clip": data["clip_names"][codes],
                    "subject": data["clip_subjects"][codes],
                    "emotion": data["clip_emotions"][codes],
                    "label": data["clip_labels"][codes],
                    "frame_index": data["frame_index"],
                    "fallback": data["fallback"],
                }
            )
            for column, values in zip(BOX_COLUMNS, data["boxes"].T, strict=True):
                frames[column] = values
            images = data["images"]
            class_names = tuple(str(c) for c in data["class_names"])
        manifest = pd.read_csv(
            manifest_path,
            dtype={"clip": str, "subject": str, "path": str, "emotion": str, "status": str},
            keep_default_na=False,
        )
        _check_consistent(images, frames, manifest, settings, images_path)
        return cls(images, frames, manifest, class_names, settings, name)


def crop_shape(settings: FaceSettings) -> tuple[int, ...]:
    """The shape of one crop made with ``settings``."""
    size = int(settings.size)
    return (size, size, 3) if settings.colour == "rgb" else (size, size)


def _check_consistent(
    images: np.ndarray, frames: pd.DataFrame, manifest: pd.DataFrame, settings, where
) -> None:
    """A consolidated file and its manifest must agree (a truncated manifest, a crop of
    other settings): ValueError, and the caller rebuilds from the clip entries."""
    missing = [c for c in MANIFEST_COLUMNS if c not in manifest.columns]
    if missing:
        raise ValueError(f"{where}: manifest lacks columns {missing}")
    if tuple(images.shape[1:]) != crop_shape(settings):
        raise ValueError(f"{where}: crops of shape {images.shape[1:]}, settings give other")
    ok = manifest["status"] == "ok"
    crops = pd.to_numeric(manifest.loc[ok, "n_crops"], errors="coerce")
    if len(frames) != len(images) or crops.isna().any() or int(crops.sum()) != len(images):
        raise ValueError(
            f"{where}: {len(images)} crops but the manifest accounts for "
            f"{int(crops.fillna(0).sum())}: truncated or mismatched manifest"
        )
