"""Proof images: JPG or PNG up to 5 MB, judged by content, stored outside the web root."""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from app.services.errors import invalid

MAX_IMAGE_BYTES = 5 * 1024 * 1024
FORMATS = {"JPEG": "jpg", "PNG": "png"}
CONTENT_TYPES = {"jpg": "image/jpeg", "png": "image/png"}


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


def store_image(folder: Path, upload: Upload, field: str) -> str:
    """Validate and save; returns the stored file name (never the user's)."""
    if len(upload.data) > MAX_IMAGE_BYTES:
        raise invalid(field, "The image is larger than 5 MB.")
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            kind = image.format
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError,
            Image.DecompressionBombError):
        raise invalid(field, "This is not a readable JPG or PNG image.") from None
    if kind not in FORMATS:
        raise invalid(field, f"Upload a JPG or PNG image, not {kind}.")
    name = f"{uuid.uuid4().hex}.{FORMATS[kind]}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(upload.data)
    return name


def image_path(folder: Path, name: str) -> tuple[Path, str]:
    """The file and its content type; names are ours, so no path can escape."""
    stem, _, ext = name.partition(".")
    if len(stem) != 32 or not all(c in "0123456789abcdef" for c in stem) or (
        ext not in CONTENT_TYPES
    ):
        raise ValueError("not a stored image name")
    return folder / name, CONTENT_TYPES[ext]
