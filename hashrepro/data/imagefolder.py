"""ImageFolder trees (``<split>/<class>/<file>.jpg``) decoded into arrays, with caching."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .images import decode_bytes, decode_many

__all__ = ["IMAGE_EXTS", "list_image_folder", "decode_image_folder"]

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".ppm", ".pgm", ".tif", ".tiff", ".webp"}


def list_image_folder(folder: Path, classes: list[str] | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """Files of ``folder/<class>/*`` sorted by class then file name.

    Returns (paths, labels int64 (n,), classes). ``classes`` fixes the class order (default:
    sorted sub-folder names)."""
    folder = Path(folder)
    if classes is None:
        classes = sorted(d.name for d in folder.iterdir() if d.is_dir() and not d.name.startswith("."))
    paths: list[Path] = []
    labels: list[int] = []
    for ci, c in enumerate(classes):
        cdir = folder / c
        if not cdir.is_dir():
            continue
        files = sorted(p for p in cdir.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        paths += files
        labels += [ci] * len(files)
    return paths, np.asarray(labels, dtype=np.int64), list(classes)


def decode_image_folder(root: Path, splits: tuple[str, ...], size=None, desc: str = "decoding"):
    """Decode ``root/<split>/<class>/*`` for each split, classes from the first split.

    Returns (images uint8 (N, H, W, C), labels int64 (N,), classes, {split: index array})."""
    classes = None
    all_paths, all_labels, official = [], [], {}
    for s in splits:
        paths, labels, classes = list_image_folder(root / s, classes)
        official[s] = np.arange(len(all_paths), len(all_paths) + len(paths))
        all_paths += paths
        all_labels.append(labels)
    images = decode_many(all_paths, size=size, desc=desc)
    return images, np.concatenate(all_labels), classes, official


def decode_tar_imagefolder(archive: Path, splits: tuple[str, ...], size=None, desc: str = "decoding",
                           expected_counts: dict[str, int] | None = None, what: str | None = None):
    """Decode an ImageFolder tree straight from a (gzipped) tar, in one streaming pass.

    Members ``[prefix/]<split>/<class>/<file>`` with an image extension are decoded; the result
    is ordered like :func:`decode_image_folder` on the extracted tree (split, class, file name),
    without writing tens of thousands of small files first.

    Verification (every failure is a :class:`~hashrepro.data.base.CorruptDataError` naming the
    archive): the file must be a (gzipped) tar whose gzip stream is complete; with
    ``expected_counts`` (``{split: number of images}``) each split must hold exactly that many
    images; every member must decode (a corrupt image is named ``<archive>:<member>``).
    ``what`` describes the expected archive in messages.

    Returns (images uint8 (N, H, W, C), labels int64 (N,), classes, {split: index array})."""
    from tqdm.auto import tqdm

    from .archives import open_tar_stream
    from .base import CorruptDataError

    what = what or f"a (gzipped) tar of <split>/<class>/<image> members for splits {splits}"
    found: dict[tuple[str, str, str], tuple[str, bytes]] = {}
    with open_tar_stream(archive, what) as tf:
        for m in tqdm(tf, desc=f"{desc} (reading)", disable=None, leave=False, unit="file"):
            if not m.isfile():
                continue
            parts = m.name.replace("\\", "/").split("/")
            if len(parts) < 3 or parts[-3] not in splits or Path(parts[-1]).suffix.lower() not in IMAGE_EXTS:
                continue
            found[(parts[-3], parts[-2], parts[-1])] = (m.name, tf.extractfile(m).read())
    if not found:
        raise CorruptDataError(f"{archive}: no <split>/<class>/<image> members for splits {splits}; expected {what}")
    if expected_counts:
        got = {s: sum(1 for k in found if k[0] == s) for s in splits}
        bad = {s: n for s, n in got.items() if s in expected_counts and n != expected_counts[s]}
        if bad:
            raise CorruptDataError(
                f"{archive} holds {', '.join(f'{got[s]:,} {s}' for s in splits)} images, expected "
                f"{', '.join(f'{expected_counts[s]:,} {s}' for s in splits if s in expected_counts)}: "
                "the archive is truncated or a different version; re-obtain it (see data/README.md)")
    first = [k for k in found if k[0] == splits[0]]
    classes = sorted({k[1] for k in first})
    cidx = {c: i for i, c in enumerate(classes)}
    extra = sorted({k[1] for k in found} - set(classes))
    if extra:
        raise CorruptDataError(f"{archive}: classes {extra} appear outside the {splits[0]!r} split")
    keys = sorted(found, key=lambda k: (splits.index(k[0]), cidx[k[1]], k[2]))
    images = decode_bytes([found[k][1] for k in keys], size=size, desc=desc,
                          jpeg=all(Path(k[2]).suffix.lower() in (".jpg", ".jpeg") for k in keys),
                          names=[f"{archive}:{found[k][0]}" for k in keys])
    labels = np.asarray([cidx[k[1]] for k in keys], dtype=np.int64)
    split_of = np.asarray([splits.index(k[0]) for k in keys])
    official = {s: np.flatnonzero(split_of == i) for i, s in enumerate(splits)}
    return images, labels, classes, official
