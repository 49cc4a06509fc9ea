"""Proof images: JPG or PNG up to 5 MB and 40 megapixels, judged by content, stored
outside the web root.

A form is checked whole before anything touches the disk (`check_image`), and an
image reaches its folder only when the transaction that refers to it commits
(`store_on_commit`): a refused form or a failed commit leaves no file behind, and
files an edit replaced or a delete dropped go once that change has committed.
"""

from __future__ import annotations

import io
import logging
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.services.errors import invalid

log = logging.getLogger("smsops.uploads")

MAX_IMAGE_BYTES = 5 * 1024 * 1024
# Pixels decide the memory a decoder needs, not bytes: a 5 MB PNG of one colour can
# hold billions. 40 megapixels (e.g. 8000 x 5000) is far above any scan or photo of a
# certificate, and far below Pillow's own bomb limit (about 89 megapixels).
MAX_IMAGE_PIXELS = 40_000_000
FORMATS = {"JPEG": "jpg", "PNG": "png"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass(frozen=True)
class CheckedImage:
    """An upload that passed every check, with the name it will be stored under."""

    name: str
    data: bytes


def check_image(upload: Upload, field: str) -> CheckedImage:
    """Validate by content; no disk I/O. The name is ours, never the user's."""
    if len(upload.data) > MAX_IMAGE_BYTES:
        raise invalid(field, "The image is larger than 5 MB.")
    too_many = (f"The image has more than {MAX_IMAGE_PIXELS // 1_000_000} megapixels; "
                "scale it down (a scan at 300 dpi is plenty).")
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            kind, (width, height) = image.format, image.size
            if width * height > MAX_IMAGE_PIXELS:  # before verify() reads any further
                raise invalid(field, f"The image is {width} × {height} pixels "  # noqa: RUF001
                                     f"({width * height / 1e6:.0f} megapixels); the limit "
                                     f"is {MAX_IMAGE_PIXELS // 1_000_000} megapixels. "
                                     "Scale it down.")
            image.verify()
    except Image.DecompressionBombError:  # so large Pillow would not even open it
        raise invalid(field, too_many) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise invalid(field, "This is not a readable JPG or PNG image.") from None
    if kind not in FORMATS:
        raise invalid(field, f"Upload a JPG or PNG image, not {kind}.")
    return CheckedImage(f"{uuid.uuid4().hex}.{FORMATS[kind]}", upload.data)


def image_path(folder: Path, name: str) -> tuple[Path, str]:
    """The file and its content type; names are ours, so no path can escape."""
    stem, _, ext = name.partition(".")
    if len(stem) != 32 or not all(c in "0123456789abcdef" for c in stem) or (
        ext not in CONTENT_TYPES
    ):
        raise ValueError("not a stored image name")
    return folder / name, CONTENT_TYPES[ext]


# --- files that follow the transaction -------------------------------------------

_KEY = "smsops.pending_files"


@dataclass
class _Pending:
    transaction: SessionTransaction  # the outermost one: files follow its fate
    writes: list[tuple[Path, bytes]] = field(default_factory=list)
    deletes: list[Path] = field(default_factory=list)
    written: list[Path] = field(default_factory=list)  # .part files on disk


def _pending(session: Session) -> _Pending:
    transaction = session.get_transaction() or session.begin()
    pending = session.info.get(_KEY)
    if pending is None or pending.transaction is not transaction:
        pending = session.info[_KEY] = _Pending(transaction)
    return pending


def _part(path: Path) -> Path:
    return path.with_name(f".{path.name}.part")


def store_on_commit(session: Session, folder: Path, image: CheckedImage) -> str:
    """Store the image when the session's transaction commits; returns its name."""
    image_path(folder, image.name)  # our own name, checked all the same
    _pending(session).writes.append((folder / image.name, image.data))
    return image.name


def delete_on_commit(session: Session, folder: Path, name: str | None) -> None:
    """Remove a stored image once the change that dropped it has committed."""
    if name:
        path, _ = image_path(folder, name)
        _pending(session).deletes.append(path)


@event.listens_for(Session, "before_commit")
def _write_parts(session: Session) -> None:
    """Write to temporary names first: a full disk fails the commit, not the page later."""
    pending = session.info.get(_KEY)
    if pending is None or pending.transaction is not session.get_transaction():
        return
    for path, data in pending.writes:
        path.parent.mkdir(parents=True, exist_ok=True)
        _part(path).write_bytes(data)
        pending.written.append(_part(path))


@event.listens_for(Session, "after_commit")
def _publish(session: Session) -> None:
    pending = session.info.pop(_KEY, None)
    if pending is None:
        return
    for path, _data in pending.writes:
        try:
            os.replace(_part(path), path)  # atomic within the folder
        except OSError:
            log.exception("could not store uploaded image %s", path.name)
    for path in pending.deletes:
        try:
            path.unlink(missing_ok=True)
        except OSError:
            log.exception("could not remove replaced image %s", path.name)


@event.listens_for(Session, "after_transaction_end")
def _discard(session: Session, transaction: SessionTransaction) -> None:
    """The transaction ended without a commit (rolled back, failed): drop its files."""
    pending = session.info.get(_KEY)
    if pending is None or pending.transaction is not transaction:
        return
    session.info.pop(_KEY, None)
    for part in pending.written:
        part.unlink(missing_ok=True)
