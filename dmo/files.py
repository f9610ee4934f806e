"""Writing where a user points: atomically, to regular files only, never over what is not ours.

Every file dmo writes at a path the user chose goes through here (recipes,
generated data, dataset_info.json). A target that exists and is not a regular
file — a FIFO, a socket, a device, a directory, a symbolic link — is refused
with or without ``--force``: renaming a temporary file over it would replace
the node itself (``/dev/full`` became a plain file). A write goes to a hidden
temporary sibling, is fsynced and renamed into place; on any failure
(``File too large``, ``No space left on device``) the temporary file is
removed and the error names the path and the cause.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

from dmo.errors import DataError

_KINDS = (
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISLNK, "a symbolic link"),
)


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def check_target(path: Path, *, force: bool, flag: str = "--force") -> None:
    """Refuse a target we must not write: not a regular file, or an existing file without ``force``."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISREG(info.st_mode):
        raise DataError(f"exists and is {_kind(info.st_mode)}; dmo writes only regular files", where=str(path),
                        hint="choose another path (this is refused with or without --force)")
    if not force:
        raise DataError("output exists", where=str(path), hint=f"choose another path or pass {flag} to replace it")


def check_directory_target(path: Path) -> None:
    """A folder dmo writes into: absent (it is created) or a real directory, never a link or a node."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(info.st_mode):
        raise DataError(f"exists and is {_kind(info.st_mode)}, not a directory", where=str(path),
                        hint="choose another output directory")


def file_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0o666 less the umask."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_CHUNK = 1 << 20


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def total_sha256(files: Mapping[str, str]) -> str:
    """One hash for a set of files: over sorted (name, file hash) pairs, so renames count too."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(f"{name}\0{files[name]}\n".encode())
    return digest.hexdigest()


def tree_sha256(path: Path) -> str:
    """A file's sha256, or a directory's over every file below it (relative posix names)."""
    path = Path(path)
    if not path.is_dir():
        return file_sha256(path)
    files = {p.relative_to(path).as_posix(): file_sha256(p) for p in path.rglob("*") if p.is_file()}
    return total_sha256(files)


def write_failure(error: BaseException) -> str:
    """What went wrong in a failed write, e.g. ``File too large``, from OSError or safetensors."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    text = str(error)  # safetensors: "Error while serializing: I/O error: File too large (os error 27)"
    return text.split("I/O error: ", 1)[-1] if "I/O error: " in text else text


@contextlib.contextmanager
def atomic_writer(path: Path, *, force: bool, binary: bool = False, flag: str = "--force") -> Iterator:
    """An open temporary file that becomes ``path`` when the block ends without error."""
    path = Path(path)
    check_target(path, force=force, flag=flag)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        raise DataError(f"cannot write here: {write_failure(error)}", where=str(path)) from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        check_target(path, force=True)  # nothing became a FIFO or a link while we wrote
        os.replace(tmp, path)
    except OSError as error:
        raise DataError(f"could not write: {write_failure(error)}", where=str(path),
                        hint="check that the disk has space and the folder is writable") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: Path, text: str, *, force: bool, flag: str = "--force") -> Path:
    with atomic_writer(path, force=force, flag=flag) as handle:
        handle.write(text)
    return Path(path)


@contextlib.contextmanager
def cleanup_on_failure(*paths: Path) -> Iterator[list[Path]]:
    """Remove what a multi-file write created (passed in, or appended to the yielded list) if it fails."""
    created = list(paths)
    try:
        yield created
    except BaseException:
        for path in reversed(created):
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        raise


__all__ = [
    "atomic_writer",
    "check_directory_target",
    "check_target",
    "cleanup_on_failure",
    "file_mode",
    "file_sha256",
    "total_sha256",
    "tree_sha256",
    "write_failure",
    "write_text",
]
