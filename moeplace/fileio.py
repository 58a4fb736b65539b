"""Reading spec files and writing outputs atomically.

Every file moeplace writes goes through `write_text`/`write_bytes` (temporary file in the same
directory, fsync, rename), and an output directory is built in a sibling temporary directory and renamed
into place by `atomic_dir`, so that an error never leaves a half-written plan behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from moeplace.errors import InputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


def load_mapping(path: str | Path) -> dict[str, Any]:
    """Load a JSON or TOML file (chosen by suffix) into a dict; errors name the file and position."""
    p = Path(path)
    if not p.is_file():
        raise InputError("file not found", source=str(p))
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", source=str(p)) from None
    suffix = p.suffix.lower()
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix == ".json":
            data = json.loads(raw.decode("utf-8"))
        else:
            raise InputError(f"unsupported file type {suffix!r} (expected .json or .toml)", source=str(p))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"malformed TOML: {exc}", source=str(p)) from None
    if not isinstance(data, dict):
        raise InputError(f"top level must be a table/object, got {type(data).__name__}", source=str(p))
    return data


def file_digest(path: str | Path) -> str:
    """The sha256 of a file's bytes, hex, read in 1 MiB chunks (the digest plans and manifests record)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _atomic_write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: str | Path, text: str) -> None:
    _atomic_write(Path(path), text.encode("utf-8"))


def write_bytes(path: str | Path, data: bytes) -> None:
    _atomic_write(Path(path), data)


def dumps_json(obj: Any) -> str:
    """Canonical JSON: sorted keys are not used (field order is meaningful), 2-space indent, newline at end."""
    return json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n"


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `out` only if the block finishes without error.

    An existing non-empty `out` is refused unless `force`; with `force` it is replaced whole.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError("exists and is not a directory", source=str(out))
    if out.is_dir() and any(out.iterdir()) and not force:
        raise InputError("output directory exists and is not empty (use --force to replace it)", source=str(out))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        if out.exists():
            old = out.parent / f".{out.name}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
