"""One safe way to write an output file: parent folders created, written atomically, failures raised naming the path.

Every command that writes a picture, a figure, a JSON report or a score file goes through `write_atomic` (or one of
its wrappers below), so that a path it prints has been written:

- the parent folder is created (a video id such as ``MoveRight/v_MoveRight_g01_c01`` names a subfolder);
- the content goes to a temporary name in the same folder and is renamed into place, so a reader never sees a
  half-written file and a failed write leaves no file behind (a `tf.io.gfile` URL such as ``gs://bucket/run/x.png``
  is written to a local temporary and copied, one object write);
- a writer that reports failure instead of raising (``cv2.imwrite`` returns ``False``) or leaves an empty file raises
  `WriteError`, an `OSError` whose message names the path and what to check.

This module sits in the bottom layer (`data/`), so every package may import it. It imports OpenCV only inside
`write_image`.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

import numpy as np


class WriteError(OSError):
    """An output file could not be written; the message names the path and the likely cause."""


def _fail(path: str, reason: str) -> WriteError:
    return WriteError(f"could not write {path}: {reason}")


def is_remote(path: str) -> bool:
    """Whether `path` is a `tf.io.gfile` URL (``gs://``, ``ram://`` ...) rather than a local path."""
    return "://" in path


def make_parent(path: str) -> str:
    """Creates the folder that will hold `path`. Returns the folder (absolute for local paths).

    Raises:
      WriteError: the folder cannot be created (a file stands where a folder should be, or no permission), or
        `path` itself is an existing folder.
    """
    if is_remote(path):
        import tensorflow as tf  # Only remote paths need TensorFlow's file systems.

        folder = path.rsplit("/", 1)[0]
        try:
            if tf.io.gfile.isdir(path):
                raise _fail(path, "it is an existing folder; give a file name.")
            tf.io.gfile.makedirs(folder)
        except tf.errors.OpError as error:
            raise _fail(path, f"cannot create the folder {folder} ({error.message}).") from error
        return folder
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        raise _fail(path, "it is an existing folder; give a file name.")
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        raise _fail(
            path,
            f"a file stands where its folder should be ({error.filename or folder}); move it or choose "
            "another output path.",
        ) from error
    except OSError as error:
        raise _fail(path, f"cannot create the folder {folder} ({error.strerror or error}).") from error
    return folder


_COUNTER = itertools.count()


def _temporary_name(path: str) -> str:
    """A hidden name next to `path` (in the local temp folder for remote paths), keeping its extension.

    Writers such as OpenCV pick the format from the extension.
    """
    if is_remote(path):
        import tempfile

        folder, name = tempfile.gettempdir(), path.rsplit("/", 1)[-1]
    else:
        folder, name = os.path.split(os.path.abspath(path))
    stem, extension = os.path.splitext(name)
    return os.path.join(folder, f".{stem}.tmp-{os.getpid()}-{next(_COUNTER)}{extension}")


def _move_into_place(temporary: str, path: str) -> None:
    """Renames a finished local temporary to `path` (copies it to a remote `path`: one object write)."""
    if is_remote(path):
        import tensorflow as tf

        try:
            tf.io.gfile.copy(temporary, path, overwrite=True)
        except tf.errors.OpError as error:
            raise _fail(path, f"{error.message}.") from error
        return
    try:
        os.replace(temporary, path)
    except OSError as error:
        raise _fail(path, f"{error.strerror or error}.") from error


def write_atomic(path: str, write: Callable[[str], Any]) -> str:
    """Runs `write(temporary_path)`, checks it produced a non-empty file, and moves it to `path`.

    Args:
      path: the final file: a local path or a `tf.io.gfile` URL (``gs://...``; then written locally and copied).
      write: writes the content to the local path it is given (same extension as `path`). A return value of
        `False` means failure (OpenCV's convention); other return values are ignored.

    Returns:
      `path`.

    Raises:
      WriteError: naming `path`, when the folder cannot be made, the writer fails or writes nothing, or the move
        fails. No file is left at `path` or at the temporary name then (an older `path` stays as it was).
    """
    make_parent(path)
    temporary = _temporary_name(path)
    try:
        try:
            result = write(temporary)
        except WriteError:
            raise
        except OSError as error:
            raise _fail(path, f"{error.strerror or error}; check that the folder is writable.") from error
        if result is False:
            raise _fail(
                path,
                "the writer reported failure; check the file extension, the folder's permissions and "
                "the free disk space.",
            )
        if not os.path.isfile(temporary) or os.path.getsize(temporary) == 0:
            raise _fail(path, "the writer produced no data; check the free disk space.")
        _move_into_place(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)
    return path


@contextlib.contextmanager
def open_atomic(path: str, mode: str = "w", **kwargs: Any) -> Iterator[IO]:
    """`open(path, mode)` for writing that only replaces `path` when the `with` block finishes without error.

    Args:
      path: the final file (local, or a `tf.io.gfile` URL).
      mode: "w" (text) or "wb" (binary).
      **kwargs: passed to `open` (e.g. newline="").

    Yields:
      The open file object (of a local temporary file).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"open_atomic writes whole files: mode must be 'w' or 'wb', got {mode!r}.")
    make_parent(path)
    temporary = _temporary_name(path)
    try:
        try:
            handle = open(temporary, mode, **kwargs)
        except OSError as error:
            raise _fail(path, f"{error.strerror or error}; check that the folder is writable.") from error
        with handle:
            yield handle
        _move_into_place(temporary, path)
    finally:
        if os.path.lexists(temporary):
            os.remove(temporary)


def write_text(path: str, text: str) -> str:
    """Writes `text` (UTF-8) atomically. Returns `path`."""
    with open_atomic(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def write_json(path: str, value: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """Writes `value` as JSON (with a final newline) atomically. Returns `path`."""
    return write_text(path, json.dumps(value, indent=indent, sort_keys=sort_keys) + "\n")


def write_image(path: str, image: np.ndarray, *, rgb: bool = True) -> str:
    """Writes an image with OpenCV (format from the extension: .png, .jpg, ...). Returns `path`.

    Args:
      path: output file; its folder is created.
      image: (H, W) grey or (H, W, 3) uint8 colour image.
      rgb: the channels of a colour image are RGB (converted to OpenCV's BGR); False when already BGR.

    Raises:
      WriteError: naming `path`, when OpenCV cannot encode or write it (unknown extension, unwritable folder).
    """
    import cv2  # Only images need OpenCV.

    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 3 and rgb:
        image = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)

    def write(temporary: str) -> bool:
        try:
            return bool(cv2.imwrite(temporary, image))
        except cv2.error as error:  # e.g. no encoder for the extension
            raise _fail(
                path, f"OpenCV cannot encode it ({str(error).strip().splitlines()[-1]}); use .png or .jpg."
            ) from error

    return write_atomic(path, write)
