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
            data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
        else:
            raise InputError(f"unsupported file type {suffix!r} (expected .json or .toml)", source=str(p))
    except UnicodeDecodeError:
        raise InputError("not UTF-8 text", source=str(p)) from None
    except json.JSONDecodeError as exc:
        raise InputError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}", source=str(p)) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"malformed TOML: {exc}", source=str(p)) from None
    except RecursionError:
        raise InputError("nested too deeply", source=str(p)) from None
    except ValueError as exc:  # NaN/Infinity (_no_constant), an integer of more than 4,300 digits
        raise InputError(str(exc).split("; ")[0], source=str(p)) from None
    if not isinstance(data, dict):
        raise InputError(f"top level must be a table/object, got {type(data).__name__}", source=str(p))
    return data


def load_document(path: str | Path, fmt: str, model: type, noun: str):
    """A versioned moeplace file (`"format": fmt`) validated into the pydantic `model`; a file of another
    format, or one that does not validate, is one line naming the field (noun: "plan", "measurement")."""
    from pydantic import ValidationError

    data = load_mapping(path)
    if data.get("format") != fmt:
        raise InputError(f"not a moeplace {noun} (format {data.get('format')!r}, expected {fmt!r})",
                         source=str(path), field="format")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InputError.from_validation(exc, str(path)) from None


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows (a cost or size must be finite)")


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


def _claim(out: Path, force: bool) -> tuple[int, bool]:
    """Check that `out` may be written, create it when absent; (its inode, whether this call created it)."""
    try:
        here = Path.cwd().resolve()
        target = out.resolve()
        if target == here or target in here.parents:
            raise InputError("is the working directory or above it; choose a new directory", source=str(out))
        if out.is_symlink():
            raise InputError("is a symbolic link; give the directory itself", source=str(out))
        if out.exists() and not out.is_dir():
            raise InputError("exists and is not a directory", source=str(out))
        above = next((a for a in out.parents if a.exists()), None)
        if above is not None and not above.is_dir():
            raise InputError(f"cannot create the output directory ({above} is not a directory)", source=str(out))
        out.parent.mkdir(parents=True, exist_ok=True)
        try:
            out.mkdir()
            created = True
        except FileExistsError:
            created = False
            if not out.is_dir():
                raise InputError("exists and is not a directory", source=str(out)) from None
            if any(out.iterdir()) and not force:
                raise InputError("output directory exists and is not empty (use --force to replace it)",
                                 source=str(out)) from None
        return out.stat().st_ino, created
    except OSError as exc:
        raise InputError(f"cannot create the output directory ({exc.strerror})", source=str(out)) from None


def _keep_aside(out: Path, tmp: Path) -> Path:
    """Rename the finished `tmp` to a free sibling of `out`, `<name>.new-<pid>[-n]`, and return its path."""
    for n in range(1000):
        kept = out.parent / f"{out.name}.new-{os.getpid()}{f'-{n}' if n else ''}"
        try:
            kept.mkdir()
        except FileExistsError:
            continue
        os.replace(tmp, kept)  # onto the empty directory just made: never over anything else
        return kept
    return tmp


@contextlib.contextmanager
def atomic_dir(out: str | Path, *, force: bool = False) -> Iterator[Path]:
    """Yield a temporary directory that replaces `out` only if the block finishes without error.

    `out` is claimed at the start: created when absent, refused when it is a non-empty directory unless
    `force`. At the end it is checked again: when another process replaced it meanwhile, or put files in
    it (allowed only with `force` on a directory that existed at the start), it is left alone, the new files are kept in a sibling directory and the error names
    both paths. On any error or interrupt the temporary directory, and a claimed `out` still empty, go.
    """
    out = Path(out)
    inode, created = _claim(out, force)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name[:200]}.", suffix=".tmp", dir=out.parent))
    except OSError as exc:
        if created:
            with contextlib.suppress(OSError):
                out.rmdir()
        raise InputError(f"cannot create a directory beside it ({exc.strerror})", source=str(out)) from None
    os.chmod(tmp, 0o777 & ~_umask())
    try:
        yield tmp
        try:
            now = out.lstat()
        except FileNotFoundError:
            now = None
        ours = now is not None and now.st_ino == inode and out.is_dir() and not out.is_symlink()
        if now is not None and not (ours and (not any(out.iterdir()) or (force and not created))):
            kept = _keep_aside(out, tmp)
            why = "was replaced by another process" if not ours else "was written by another process"
            raise InputError(f"{why} during the run; left it alone, the new files are in {kept}", source=str(out))
        if now is not None:
            old = out.parent / f".{out.name[:200]}.old-{os.getpid()}"
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if created:
            with contextlib.suppress(OSError):
                if out.stat().st_ino == inode:
                    out.rmdir()  # only when still empty: rmdir refuses anything else
        raise
