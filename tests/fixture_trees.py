"""Fixture trees of the paper's datasets, built from the real CREMA-D clips.

SAVEE, eNTERFACE'05 and RAVDESS cannot be redistributed, so tests build their folder
layouts in a temp dir from the 6 real CREMA-D clips under ``<data>/crema-d-sample``,
transcoded with PyAV into the containers those datasets use (``.avi`` MPEG-4 Part 2,
``.mp4`` H.264) and placed under the datasets' file names, irregular ones included.

Each builder returns a ``FixtureTree`` that says, for every file it wrote, what a correct
adapter must make of it: a sample (subject, emotion) or a skip (a phrase of the reason).
Reusable by any stage's tests::

    from fixture_trees import ClipBank, build_enterface_tree
    bank = ClipBank(data_root() / "crema-d-sample", tmp_path / "clips", max_frames=10)
    tree = build_enterface_tree(tmp_path / "enterface", bank)
    get_adapter("enterface").scan(tree.root)
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av

from pathnet_fer.data.crema_d import CODES as CREMA_CODES

# Stand-in content for emotions CREMA-D lacks; the label comes from the name anyway.
_STAND_IN = {"surprise": "happiness"}
# Container -> codec: MPEG-4 Part 2 in AVI (as SAVEE / eNTERFACE ship), H.264 in MP4.
_CODECS = {".avi": ("mpeg4",), ".mp4": ("libx264", "h264", "mpeg4"), ".mov": ("mpeg4",)}


def crema_clips(crema_root: Path) -> dict[str, Path]:
    """The real CREMA-D clips by canonical emotion (``{"anger": .../1001_DFA_ANG_XX.flv}``)."""
    clips: dict[str, Path] = {}
    for path in sorted((crema_root / "VideoFlash").glob("*.flv")):
        code = path.stem.split("_")[2].upper()
        if code in CREMA_CODES:
            clips.setdefault(CREMA_CODES[code], path)
    if not clips:
        raise FileNotFoundError(f"no CREMA-D clips under {crema_root / 'VideoFlash'}")
    return clips


def _encoder(suffix: str) -> str:
    for name in _CODECS.get(suffix, ("mpeg4",)):
        try:
            av.codec.Codec(name, "w")
        except Exception:  # codec not built into this PyAV
            continue
        return name
    raise RuntimeError(f"PyAV here has no encoder for {suffix} ({_CODECS.get(suffix)})")


def transcode(src: Path, dst: Path, max_frames: int = 10) -> Path:
    """Re-encode the first ``max_frames`` video frames of ``src`` into ``dst``'s container.

    The container follows ``dst``'s extension (``.avi`` -> MPEG-4 Part 2, ``.mp4`` ->
    H.264); the frame size and (rounded) frame rate are kept, audio is dropped.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(src)) as source:
        stream = source.streams.video[0]
        rate = Fraction(round(float(stream.average_rate or 25)))
        frames = []
        for frame in source.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            if len(frames) >= max_frames:
                break
    if not frames:
        raise RuntimeError(f"no video frame decoded from {src}")
    height, width = frames[0].shape[:2]
    with av.open(str(dst), mode="w") as target:
        out = target.add_stream(_encoder(dst.suffix.lower()), rate=rate)
        out.width, out.height, out.pix_fmt = width, height, "yuv420p"
        for array in frames:
            for packet in out.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                target.mux(packet)
        for packet in out.encode():
            target.mux(packet)
    return dst


class ClipBank:
    """Transcodes each real CREMA-D clip once per container, then copies it into trees."""

    def __init__(self, crema_root: Path, cache_dir: Path, max_frames: int = 10) -> None:
        self.sources = crema_clips(crema_root)
        self.cache_dir = cache_dir
        self.max_frames = max_frames
        self._made: dict[tuple[str, str], Path] = {}

    def clip(self, emotion: str, suffix: str) -> Path:
        """A transcoded clip showing ``emotion`` (a stand-in for surprise) in ``suffix``."""
        source = self.sources.get(emotion) or self.sources[_STAND_IN.get(emotion, "anger")]
        key = (source.stem, suffix.lower())
        if key not in self._made:
            dst = self.cache_dir / f"{source.stem}_{self.max_frames}f{suffix.lower()}"
            if not dst.exists():
                transcode(source, dst, self.max_frames)
            self._made[key] = dst
        return self._made[key]

    def place(self, emotion: str, dst: Path) -> Path:
        """Copy a clip of ``emotion`` to ``dst`` (container from ``dst``'s extension)."""
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.clip(emotion, dst.suffix), dst)
        return dst


@dataclass
class FixtureTree:
    """A built tree and what a correct adapter must find in it (paths relative to root).

    ``samples``: relpath -> (subject, emotion) with neutral included, i.e. the outcome
    with ``keep_neutral=True``; ``skipped``: relpath -> phrase expected in the reason.
    """

    root: Path
    samples: dict[str, tuple[str, str]] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)

    def expected_samples(self, keep_neutral: bool) -> dict[str, tuple[str, str]]:
        """Expected samples for a scan with this ``keep_neutral``."""
        return {
            path: value
            for path, value in self.samples.items()
            if keep_neutral or value[1] != "neutral"
        }

    def expected_skipped(self, keep_neutral: bool) -> dict[str, str]:
        """Expected skips (relpath -> reason phrase) for a scan with this ``keep_neutral``."""
        skipped = dict(self.skipped)
        if not keep_neutral:
            for path, (_, emotion) in self.samples.items():
                if emotion == "neutral":
                    skipped[path] = "keep_neutral=False"
        return skipped

    def _video(self, bank: ClipBank, rel: str, emotion: str) -> None:
        bank.place(emotion, self.root / rel)

    def _text(self, rel: str, text: str = "not a video\n") -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def build_savee_tree(root: Path, bank: ClipBank) -> FixtureTree:
    """``AudioVisualClip/<speaker>/<code><n>.avi`` for 2 speakers, every code, plus traps."""
    tree = FixtureTree(root)
    codes = {"a": "anger", "d": "disgust", "f": "fear", "h": "happiness", "n": "neutral",
             "sa": "sadness", "su": "surprise"}  # fmt: skip
    for speaker, numbers in (("DC", (1, 15)), ("JE", (3,))):
        for code, emotion in codes.items():
            for n in numbers:
                rel = f"AudioVisualClip/{speaker}/{code}{n}.avi"
                tree._video(bank, rel, emotion)
                tree.samples[rel] = (speaker, emotion)
    # 'n' counts up to 30 in SAVEE; a two-digit neutral number must not be read as 'n' + '3'.
    tree._video(bank, "AudioVisualClip/JE/n30.avi", "neutral")
    tree.samples["AudioVisualClip/JE/n30.avi"] = ("JE", "neutral")
    traps = {
        "AudioVisualClip/DC/s1.avi": ("anger", "unknown label 's'"),  # not sa / su
        "AudioVisualClip/DC/x2.avi": ("anger", "unknown label 'x'"),
        "AudioVisualClip/JE/readme.txt": (None, "not a video file"),
        "AudioVisualClip/stray.avi": ("anger", "outside a speaker folder"),
    }
    for rel, (emotion, reason) in traps.items():
        if emotion is None:
            tree._text(rel)
        else:
            tree._video(bank, rel, emotion)
        tree.skipped[rel] = reason
    return tree


def build_enterface_tree(root: Path, bank: ClipBank) -> FixtureTree:
    """eNTERFACE'05 with its known irregularities.

    Subjects 1, 5, 7, 11, 23 (2-4 and 6 missing; 11 in an ``S11`` folder); subject 7 lacks the ``sentence <k>`` level;
    names ``S1_HA_1.AVI``, ``s1-fe-3.avi``, ``s_23_an_1.avi``; stray non-video files; a
    file whose code disagrees with its emotion folder; an unknown code; a duplicate clip;
    a file naming another subject than its folder (the folder wins).
    """
    tree = FixtureTree(root)
    good = {
        "subject 1/anger/sentence 1/s1_an_1.avi": ("s1", "anger"),
        "subject 1/disgust/sentence 2/s1_di_2.avi": ("s1", "disgust"),
        "subject 1/fear/sentence 3/s1-fe-3.avi": ("s1", "fear"),
        "subject 1/happiness/sentence 1/S1_HA_1.AVI": ("s1", "happiness"),
        "subject 1/sadness/sentence 5/s1_sa_5.avi": ("s1", "sadness"),
        "subject 1/surprise/sentence 4/s1_su_4.avi": ("s1", "surprise"),
        "subject 5/disgust/sentence 1/s5_di_1.avi": ("s5", "disgust"),
        "subject 5/disgust/sentence 2/s50_di_2.avi": ("s5", "disgust"),  # folder wins
        "subject 7/anger/s7_an_1.avi": ("s7", "anger"),  # no sentence level
        "subject 7/happiness/s7_ha_3 .avi": ("s7", "happiness"),  # stray space
        "S11/sadness/sentence 2/s11_sa_2.avi": ("s11", "sadness"),  # short subject folder
        "subject 23/anger/sentence 1/s_23_an_1.avi": ("s23", "anger"),
        "subject 23/sadness/sentence 2/S23_SA_2.avi": ("s23", "sadness"),
        "subject 23/surprise/sentence 4/s23-su-4.avi": ("s23", "surprise"),
    }
    for rel, (subject, emotion) in good.items():
        tree._video(bank, rel, emotion)
        tree.samples[rel] = (subject, emotion)
    traps = {
        "subject 5/fear/sentence 1/s5_ha_1.avi": ("happiness", "disagrees with its emotion folder"),
        "subject 5/anger/sentence 5/s5_xx_5.avi": ("anger", "unknown label 'xx'"),
        "subject 5/anger/sentence 5/take 2.avi": ("anger", "does not match"),
        # sorts after s1_an_1.avi in the same folder and normalises to the same clip
        "subject 1/anger/sentence 1/s_1_an_1.avi": ("anger", "duplicate clip id 's1_an_1'"),
    }
    for rel, (emotion, reason) in traps.items():
        tree._video(bank, rel, emotion)
        tree.skipped[rel] = reason
    for rel in ("subject 23/readme.txt", "subject 1/anger/sentence 1/Thumbs.db"):
        tree._text(rel)
        tree.skipped[rel] = "not a video file"
    return tree


def build_ravdess_tree(root: Path, bank: ClipBank) -> FixtureTree:
    """RAVDESS ``Actor_<aa>/<mm>-<vc>-<ee>-<ii>-<ss>-<rr>-<aa>.mp4`` with every emotion code,
    an audio-video + video-only twin, audio-only files and mislabelled files."""
    tree = FixtureTree(root)
    good = {
        "Actor_01/01-01-01-01-01-01-01.mp4": ("Actor_01", "neutral"),
        "Actor_01/01-01-03-01-01-01-01.mp4": ("Actor_01", "happiness"),
        "Actor_01/01-01-04-02-01-01-01.mp4": ("Actor_01", "sadness"),
        "Actor_01/02-02-05-02-01-02-01.mp4": ("Actor_01", "anger"),  # video-only, no twin
        "Actor_02/01-01-06-01-02-01-02.mp4": ("Actor_02", "fear"),
        "Actor_02/01-02-07-01-01-01-02.mp4": ("Actor_02", "disgust"),
        "Actor_02/01-01-08-02-02-02-02.mp4": ("Actor_02", "surprise"),
    }
    for rel, (subject, emotion) in good.items():
        tree._video(bank, rel, emotion)
        tree.samples[rel] = (subject, emotion)
    traps = {
        "Actor_01/02-01-03-01-01-01-01.mp4": ("happiness", "video-only twin"),
        "Actor_01/01-01-02-01-01-01-01.mp4": ("neutral", "'02' (calm)"),
        "Actor_01/03-01-05-01-01-01-01.mp4": ("anger", "audio-only"),
        "Actor_02/01-01-09-01-01-01-02.mp4": ("anger", "unknown label '09'"),
        "Actor_02/01-01-05-01-01-01-03.mp4": ("anger", "disagrees with folder"),
        "Actor_02/01-01-05-01-01.mp4": ("anger", "does not match"),
    }
    for rel, (emotion, reason) in traps.items():
        tree._video(bank, rel, emotion)
        tree.skipped[rel] = reason
    tree._text("Actor_01/03-01-05-01-01-01-01.wav", "RIFF")
    tree.skipped["Actor_01/03-01-05-01-01-01-01.wav"] = "not a video file"
    return tree


def build_generic_tree(root: Path, bank: ClipBank, images: list[Path]) -> FixtureTree:
    """``<root>/<emotion>/[<subject>/]*`` mixing real images (e.g. JAFFE) and videos, with
    an empty class folder, an unknown class folder and stray files."""
    tree = FixtureTree(root)
    if len(images) < 3:
        raise ValueError("build_generic_tree needs at least 3 real images")

    def image(rel: str, src: Path) -> None:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, path)

    image(f"happy/p1/a{images[0].suffix}", images[0])
    tree.samples[f"happy/p1/a{images[0].suffix}"] = ("p1", "happiness")
    image(f"Angry/loose{images[1].suffix}", images[1])
    tree.samples[f"Angry/loose{images[1].suffix}"] = ("loose", "anger")
    tree._video(bank, "angry/p2/take 1/clip.mp4", "anger")
    tree.samples["angry/p2/take 1/clip.mp4"] = ("p2", "anger")
    tree._video(bank, "neutral/p1/clip.avi", "neutral")
    tree.samples["neutral/p1/clip.avi"] = ("p1", "neutral")
    image(f"bored/p1/b{images[2].suffix}", images[2])
    tree.skipped[f"bored/p1/b{images[2].suffix}"] = "unknown label 'bored'"
    (root / "fear").mkdir(parents=True)
    tree.skipped["fear"] = "empty class folder 'fear'"
    tree._text("sad/notes.txt")
    tree.skipped["sad/notes.txt"] = "not an image or video file"
    tree.skipped["sad"] = "empty class folder 'sad'"
    tree._text("labels.csv", "path,label\n")
    tree.skipped["labels.csv"] = "outside an emotion folder"
    return tree


def fer_subset(fer_root: Path, out: Path, train: int, test: int) -> Path:
    """``out/<split>/<class>/`` holding the first images of each class of real FER-2013."""
    for split, n in (("train", train), ("test", test)):
        for folder in sorted((fer_root / split).iterdir()):
            dst = out / split / folder.name
            dst.mkdir(parents=True)
            for image in sorted(folder.glob("*.jpg"))[:n]:
                shutil.copyfile(image, dst / image.name)
    return out


def ferplus_subset(ferplus_root: Path, out: Path, rows: int) -> Path:
    """``out/FER2013Train|FER2013Test/``: the first ``rows`` listed faces of real FER+ per
    split, their images and their own ``label.csv`` lines (votes as shipped)."""
    for folder in ("FER2013Train", "FER2013Test"):
        dst = out / folder
        dst.mkdir(parents=True)
        lines = (ferplus_root / folder / "label.csv").read_text().splitlines()[:rows]
        for line in lines:
            name = line.split(",", 1)[0]
            shutil.copyfile(ferplus_root / folder / name, dst / name)
        (dst / "label.csv").write_text("\n".join(lines) + "\n")
    return out
