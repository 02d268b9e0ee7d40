"""Resumable, checksum-verified downloads and path-safe archive extraction (stdlib only).

``download`` fetches into ``<dest>.part``, resuming a partial file with an HTTP Range request,
verifies the checksum, renames to ``dest`` and leaves a marker ``.<dest name>.complete`` so a rerun
does nothing. ``extract`` unpacks tar(.gz/.bz2/.xz) and zip archives after checking every member
stays inside the target (no ``../``, no absolute names, no links pointing out) and leaves a marker
``.<archive name>.extracted`` in the target.

Example:
    >>> archive = download(URL, "data/waves_yesno.tar.gz", sha256="c3f4...")  # doctest: +SKIP
    >>> extract(archive, "data")                                              # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import posixpath
import re
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path

from tqdm import tqdm

from asr.errors import UserError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
_USER_AGENT = "asr-data-prep/0.1 (+urllib)"


def _complete_marker(dest: Path) -> Path:
    return dest.with_name(f".{dest.name}.complete")


def file_digest(path: Path, algo: str) -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algo)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _expected(sha256: str | None, md5: str | None) -> tuple[str, str] | None:
    if sha256 and md5:
        raise UserError("give sha256 or md5, not both")
    if sha256:
        return "sha256", sha256.lower()
    if md5:
        return "md5", md5.lower()
    return None


def _verify(path: Path, expected: tuple[str, str] | None, url: str) -> None:
    """Raise UserError (after removing ``path``) if its digest differs from ``expected``."""
    if expected is None:
        return
    algo, want = expected
    got = file_digest(path, algo)
    if got != want:
        path.unlink(missing_ok=True)
        raise UserError(
            f"checksum mismatch for {path} (from {url}): {algo} expected {want}, got {got}; "
            "the file was removed, rerun to download it again"
        )


def download(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    retries: int = 3,
    timeout: float = 60.0,
    progress: bool = True,
) -> Path:
    """Download ``url`` to the file ``dest``, resuming a partial ``<dest>.part``; safe to rerun.

    Args:
        url (str): http(s) or file URL.
        dest (path): the file to create; its folder is created if missing.
        sha256 (str, optional): expected SHA-256 hex digest (default None: not checked).
        md5 (str, optional): expected MD5 hex digest, if no sha256 is published (default None).
        retries (int): how many times an interrupted transfer is resumed before giving up (default 3).
        timeout (float): socket timeout in seconds (default 60).
        progress (bool): show a tqdm bar when stderr is a terminal (default True).

    Returns:
        Path: ``dest``.

    Raises:
        UserError: on a checksum mismatch (the bad file is removed), an HTTP error, or a transfer
            still incomplete after ``retries`` resumptions (the ``.part`` file is kept for a rerun).
    """
    dest = Path(dest)
    expected = _expected(sha256, md5)
    marker = _complete_marker(dest)
    stamp = f"{expected[0]} {expected[1]}\n" if expected else "unverified\n"
    if dest.is_file() and marker.is_file():
        if expected is None or marker.read_text(encoding="utf-8") == stamp:
            log.info("skipping download of %s: %s exists", url, marker.name)
            return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.is_file():  # put there by hand, by a run that stopped before the marker, or re-pinned
        _verify(dest, expected, url)
    else:
        part = dest.with_name(dest.name + ".part")
        for attempt in range(retries + 1):
            try:
                _fetch(url, part, timeout, progress)
                break
            except urllib.error.HTTPError as e:
                raise UserError(f"download of {url} failed: HTTP {e.code} {e.reason}") from None
            except urllib.error.URLError as e:
                if attempt == 0:  # never connected: an unreachable host is not an interruption
                    host = urllib.parse.urlparse(url).hostname or url
                    raise UserError(f"download of {url} failed: cannot reach {host} "
                                    f"({getattr(e.reason, 'strerror', None) or e.reason})") from None
                if attempt == retries:
                    raise UserError(f"download of {url} to {part} failed: {e}; rerun to resume") from None
                log.warning("download of %s interrupted (%s); resuming (%d/%d)", url, e, attempt + 1, retries)
                time.sleep(min(2**attempt, 10) * 0.1)
            except (urllib.error.URLError, http.client.HTTPException, OSError, _Incomplete) as e:
                if attempt == retries:
                    raise UserError(f"download of {url} to {part} failed: {e}; rerun to resume") from None
                log.warning("download of %s interrupted (%s); resuming (%d/%d)", url, e, attempt + 1, retries)
                time.sleep(min(2**attempt, 10) * 0.1)
        _verify(part, expected, url)
        os.replace(part, dest)
    marker.write_text(stamp, encoding="utf-8")
    return dest


class _Incomplete(Exception):
    """The server closed the connection before sending every byte."""


def _fetch(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One attempt: append to ``part`` from where it ends. Raises _Incomplete on a short read."""
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        req.add_header("Range", f"bytes={have}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # range past the end: the .part is already whole (or bogus)
            total = _total_from_content_range(e.headers.get("Content-Range"))
            if total == have:
                return
            part.unlink()
            raise _Incomplete(f"server refused to resume at byte {have}; starting over") from None
        raise
    with resp:
        status = getattr(resp, "status", None)
        if have and status == 206:
            start = _start_from_content_range(resp.headers.get("Content-Range"))
            if start != have:
                part.unlink()
                raise _Incomplete(f"server resumed at byte {start}, not {have}; starting over")
            mode = "ab"
        else:  # 200 (range ignored) or a fresh download: start from zero
            have, mode = 0, "wb"
        length = resp.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        got = have
        with open(part, mode) as f, tqdm(
            total=total, initial=have, unit="B", unit_scale=True, desc=part.name[:-5],
            disable=None if progress else True, leave=False,
        ) as bar:
            while True:
                try:
                    block = resp.read(_CHUNK)
                except http.client.IncompleteRead as e:
                    f.write(e.partial)
                    got += len(e.partial)
                    raise _Incomplete(f"connection closed at byte {got} of {total}") from None
                if not block:
                    break
                f.write(block)
                got += len(block)
                bar.update(len(block))
    if total is not None and got != total:
        raise _Incomplete(f"connection closed at byte {got} of {total}")


def _start_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value or "")
    return int(m.group(1)) if m else None


def _total_from_content_range(value: str | None) -> int | None:
    m = re.match(r"bytes (?:\*|\d+-\d+)/(\d+)", value or "")
    return int(m.group(1)) if m else None


# --------------------------------------------------------------------------------------- extract


def _inside(rel: str) -> bool:
    """Whether the archive path ``rel`` stays inside the extraction folder, lexically."""
    if rel.startswith("/"):
        return False
    norm = posixpath.normpath(rel)
    return norm != ".." and not norm.startswith("../")


def _check_tar(tar: tarfile.TarFile, archive: Path) -> None:
    for m in tar.getmembers():
        if not _inside(m.name):
            raise UserError(f"{archive}: refusing member '{m.name}': its path is outside the target")
        if m.issym():
            link = posixpath.join(posixpath.dirname(m.name), m.linkname)
            if m.linkname.startswith("/") or not _inside(link):
                raise UserError(
                    f"{archive}: refusing member '{m.name}': symlink to '{m.linkname}' outside the target")
        elif m.islnk():
            if not _inside(m.linkname):
                raise UserError(f"{archive}: refusing member '{m.name}': hard link to '{m.linkname}' outside the target")
        elif not (m.isfile() or m.isdir()):
            raise UserError(f"{archive}: refusing member '{m.name}': not a regular file, folder or link")


def _check_zip(zf: zipfile.ZipFile, archive: Path) -> None:
    for name in zf.namelist():
        if not _inside(name):
            raise UserError(f"{archive}: refusing member '{name}': its path is outside the target")


def extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack a tar(.gz/.bz2/.xz) or zip ``archive`` into ``target``; safe to rerun.

    Every member is checked before anything is written: a name that is absolute or climbs out
    with ``..``, a link pointing outside ``target``, or a device/fifo member makes it refuse the
    whole archive. Tar members are then unpacked with the stdlib ``data`` filter, which also
    rechecks the real paths as they are written (links through links).

    Args:
        archive (path): the archive file.
        target (path): folder to unpack into (created if missing).

    Returns:
        Path: ``target``.

    Raises:
        UserError: naming the archive and the offending member, or an unreadable archive.
    """
    archive, target = Path(archive), Path(target)
    marker = target / f".{archive.name}.extracted"
    if marker.is_file():
        log.info("skipping extraction of %s: %s exists", archive, marker)
        return target
    if not archive.is_file():
        raise UserError(f"archive not found: {archive}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                _check_zip(zf, archive)
                zf.extractall(target)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                _check_tar(tar, archive)
                tar.extractall(target, filter="data")
        else:
            raise UserError(f"not a tar or zip archive: {archive}")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, OSError) as e:
        raise UserError(f"cannot extract {archive}: {e}") from None
    marker.write_text(f"{archive.name}\n", encoding="utf-8")
    return target


def download_and_extract(
    url: str,
    target_dir: str | os.PathLike,
    sha256: str | None = None,
    md5: str | None = None,
    *,
    remove_archive: bool = False,
) -> Path:
    """``download`` ``url`` into ``target_dir`` (file name from the URL) and ``extract`` it there."""
    target = Path(target_dir)
    archive = target / posixpath.basename(urllib.parse.urlparse(url).path)
    marker = target / f".{archive.name}.extracted"
    if marker.is_file():
        return target
    download(url, archive, sha256=sha256, md5=md5)
    extract(archive, target)
    if remove_archive:
        archive.unlink(missing_ok=True)
    return target


__all__ = ["download", "extract", "download_and_extract", "file_digest"]
