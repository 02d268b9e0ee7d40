"""Files written whole or not at all: atomic text writes, temporary files beside their target,
and the early check that an output folder can be created."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from asr.errors import UserError


def check_output_dir(path: str | os.PathLike) -> None:
    """Fail early, and create nothing, when ``path`` cannot be an output folder: it, or the
    nearest existing folder above it, is not a folder (or is not writable)."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UserError(f"output folder {p} is a file")
    q = p
    while not q.exists() and q != q.parent:
        q = q.parent
    if not q.is_dir():
        raise UserError(f"cannot create output folder {p}: {q} is a file")
    if not os.access(q, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {p}: permission denied on {q}")


def temp_file_beside(p: Path) -> tuple[int, str]:
    """``mkstemp`` in ``p``'s folder, named ``.<name>.<pid>.<random>.tmp``. First removes the
    temporary files of ``p`` whose writer has died (a SIGKILL or power loss mid-write leaves
    them behind); those of live processes are left alone."""
    prefix = f".{p.name}."
    for q in p.parent.iterdir():
        pid = q.name[len(prefix):].split(".", 1)[0]
        if q.name.startswith(prefix) and q.name.endswith(".tmp") and pid.isdigit() \
                and not _alive(int(pid)):
            q.unlink(missing_ok=True)
    return tempfile.mkstemp(dir=p.parent, prefix=f"{prefix}{os.getpid()}.", suffix=".tmp")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename: never a partial file."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = temp_file_beside(p)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, p)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (:func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))
