"""Manifests of any size read lazily: a cached duration index, random access, CMVN on a sample.

:class:`LazyManifest` reads a JSONL or JSONL.gz manifest once to build a compact index (one
16-byte row per utterance: byte offset of its line, duration, speaker number) and caches it in
the folder ``<manifest>.index/`` beside the manifest (``rows.npy``, ``meta.json``). The index is
valid while the manifest's size and modification time are those recorded in ``meta.json``;
otherwise it is rebuilt. ``rows.npy`` is memory-mapped, so the pages are shared by every process
on a machine and nothing of the manifest's text stays in memory: an utterance is parsed from its
line when it is asked for.

gzip has no random access, so for a ``.gz`` manifest the index build (which must decompress the
whole file once anyway) also writes the decompressed text to ``<manifest>.index/text.jsonl``,
and the offsets point into it. That costs the manifest's uncompressed size on disk (text only,
small beside the audio) and makes every lookup one seek.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import math
import os
from array import array
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

import numpy as np

from asr.errors import UserError
from asr.fileio import atomic_write_text, temp_file_beside
from asr.manifest import Utterance, parse_line

if TYPE_CHECKING:
    import torch

    from asr.distributed import Dist

ROWS = np.dtype([("offset", "<i8"), ("duration", "<f4"), ("speaker", "<i4")])
INDEX_VERSION = 1


def _stamp(p: Path) -> dict[str, int]:
    st = p.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def index_dirs(manifest: str | os.PathLike) -> list[Path]:
    """Where a manifest's index may live, in order: ``<manifest>.index/`` beside it, then
    ``~/.cache/asr/manifests/<name>.<hash of its path>/`` (for a manifest in a read-only folder)."""
    p = Path(manifest).resolve()
    digest = hashlib.sha1(str(p).encode()).hexdigest()[:16]
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return [p.with_name(p.name + ".index"), cache / "asr" / "manifests" / f"{p.name}.{digest}"]


def _writable(d: Path) -> bool:
    q = d
    while not q.exists() and q != q.parent:
        q = q.parent
    return os.access(q, os.W_OK | os.X_OK)


class LazyManifest(Sequence[Utterance]):
    """A JSONL(.gz) manifest as a sequence of :class:`Utterance`, read line by line on demand.

    ``durations`` (float32 seconds) and ``speakers`` (int32, numbers into ``speaker_names``) are
    memory-mapped arrays in manifest order. ``m[i]`` parses line ``i`` (blank lines do not
    count); iterating reads the lines in order. Errors are read_manifest's, naming file:line.
    """

    def __init__(self, path: str | os.PathLike, index: str | os.PathLike | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"manifest not found: {self.path}")
        self.base = self.path.parent.resolve()
        self.gz = self.path.suffix == ".gz"
        self.rebuilt = False
        candidates = [Path(index)] if index is not None else index_dirs(self.path)
        meta = None
        for self.dir in candidates:
            if (meta := self._valid_meta()) is not None:
                break
        if meta is None:
            self.dir = next((d for d in candidates if _writable(d)), candidates[0])
            meta = self._build()
            self.rebuilt = True
        self.rows = np.load(self.dir / "rows.npy", mmap_mode="r") if meta["rows"] else \
            np.zeros(0, ROWS)
        self.speaker_names: list[str] = meta["speakers"]
        self._fh = None
        self._pid = -1

    # --- the index ------------------------------------------------------------------------
    @property
    def text_path(self) -> Path:
        """The file the offsets point into (the manifest, or its decompressed copy)."""
        return self.dir / "text.jsonl" if self.gz else self.path

    def _valid_meta(self) -> dict | None:
        try:
            meta = json.loads((self.dir / "meta.json").read_text(encoding="utf-8"))
            ok = meta.get("version") == INDEX_VERSION \
                and meta["manifest"] == _stamp(self.path) \
                and (not meta["rows"] or meta["rows.npy"] == _stamp(self.dir / "rows.npy")) \
                and (not self.gz or meta["text"] == _stamp(self.dir / "text.jsonl"))
        except (OSError, ValueError, KeyError, TypeError):
            return None
        return meta if ok else None

    def _build(self) -> dict:
        """Read the manifest once: check every line, record offsets, durations, speakers."""
        self.dir.mkdir(parents=True, exist_ok=True)
        stamp = _stamp(self.path)
        rows_in = _Rows(self.path)
        text_tmp = out = None
        if self.gz:
            fd, text_tmp = temp_file_beside(self.dir / "text.jsonl")
            out = os.fdopen(fd, "wb")
        try:
            with (gzip.open(self.path, "rb") if self.gz else open(self.path, "rb")) as f:
                pos = 0
                for n, raw in enumerate(f, 1):
                    if out is not None:
                        out.write(raw)
                    if raw.strip():
                        rows_in.add(n, pos, raw)
                    pos += len(raw)
                rows_in.flush()
            if out is not None:
                out.flush()
                os.fsync(out.fileno())
                out.close()
                os.replace(text_tmp, self.dir / "text.jsonl")
        except (OSError, EOFError, gzip.BadGzipFile) as e:
            raise UserError(f"cannot read manifest {self.path}: {e}") from None
        finally:
            if out is not None and not out.closed:
                out.close()
            if text_tmp is not None and os.path.exists(text_tmp):
                os.unlink(text_tmp)
        offsets, durations, speakers, names = rows_in.offsets, rows_in.durations, \
            rows_in.speakers, rows_in.names
        rows = np.empty(len(offsets), ROWS)
        rows["offset"], rows["duration"], rows["speaker"] = offsets, durations, speakers
        self._check_duplicates(np.frombuffer(rows_in.id_hashes, dtype=np.int64), rows["offset"])
        meta = {"version": INDEX_VERSION, "manifest": stamp, "rows": len(rows),
                "speakers": list(names)}
        if len(rows):
            fd, tmp = temp_file_beside(self.dir / "rows.npy")
            with os.fdopen(fd, "wb") as f:
                np.save(f, rows)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.dir / "rows.npy")
            meta["rows.npy"] = _stamp(self.dir / "rows.npy")
        if self.gz:
            meta["text"] = _stamp(self.dir / "text.jsonl")
        if _stamp(self.path) != stamp:
            raise UserError(f"manifest {self.path} changed while it was being indexed")
        atomic_write_text(self.dir / "meta.json", json.dumps(meta, ensure_ascii=False))
        return meta

    def _check_duplicates(self, hashes: np.ndarray, offsets: np.ndarray) -> None:
        """Duplicate ids, found through (in-process) hashes: the lines of equal hashes are
        compared; the error is read_manifest's (the earliest line repeating an earlier id)."""
        order = np.argsort(hashes, kind="stable")
        same = np.flatnonzero(hashes[order][1:] == hashes[order][:-1])
        if not len(same):
            return
        suspects = sorted({int(order[k]) for k in same} | {int(order[k + 1]) for k in same})
        first: dict[str, int] = {}
        with open(self.text_path, "rb") as f:
            for i in suspects:  # in manifest order
                uid = self._parse(f, int(offsets[i])).id
                if uid in first:
                    la, lb = (self._line_number(int(offsets[k])) for k in (first[uid], i))
                    raise UserError(f"{self.path}:{lb}: duplicate id '{uid}' "
                                    f"(first on line {la})")
                first[uid] = i

    def _line_number(self, offset: int) -> int:
        with open(self.text_path, "rb") as f:
            return f.read(offset).count(b"\n") + 1

    # --- reading ------------------------------------------------------------------------------
    def _parse(self, f, offset: int) -> Utterance:
        f.seek(offset)
        return self._line(f.readline(), offset)

    def _line(self, raw: bytes, offset: int) -> Utterance:
        try:
            return parse_line(_decode(raw, "", first=offset == 0), "", self.base)
        except UserError:  # the manifest changed behind the index: name the line (slow path)
            where = f"{self.path}:{self._line_number(offset)}"
            parse_line(_decode(raw, where, first=offset == 0), where, self.base)
            raise

    def _file(self):
        if self._fh is None or self._pid != os.getpid():  # not shared with a forked worker
            self._fh, self._pid = open(self.text_path, "rb"), os.getpid()
        return self._fh

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(f"utterance {i} of {len(self)}")
        return self._parse(self._file(), int(self.rows["offset"][i]))

    def iter_range(self, start: int = 0, stop: int | None = None) -> Iterator[Utterance]:
        """Utterances ``start`` to ``stop`` (exclusive) in order, read sequentially."""
        stop = len(self) if stop is None else min(stop, len(self))
        if start >= stop:
            return
        with open(self.text_path, "rb") as f:
            pos = int(self.rows["offset"][start])
            f.seek(pos)
            for c in range(start, stop, 4096):
                for target in self.rows["offset"][c:min(stop, c + 4096)].tolist():
                    while pos < target:  # blank lines
                        pos += len(f.readline())
                    raw = f.readline()
                    if pos != target or not raw:
                        raise UserError(f"manifest {self.path} changed behind its index")
                    yield self._line(raw, pos)
                    pos += len(raw)

    def __iter__(self) -> Iterator[Utterance]:
        return self.iter_range()

    @property
    def durations(self) -> np.ndarray:
        return self.rows["duration"]

    @property
    def speakers(self) -> np.ndarray:
        return self.rows["speaker"]

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


class _Rows:
    """The index's columns, collected from manifest lines. Lines are parsed by the thousand
    (one ``json.loads`` of a JSON array: twice as fast as line by line) and checked as
    :func:`asr.manifest.parse_line` checks them; a chunk with any problem is parsed again line
    by line by parse_line itself, which raises read_manifest's error for the first bad line."""

    CHUNK = 1000

    def __init__(self, path: Path):
        self.path = path
        self.offsets, self.durations, self.speakers = array("q"), array("f"), array("i")
        self.id_hashes = array("q")  # in-process hash(): for the duplicate check only
        self.names: dict[str, int] = {}
        self.pending: list[tuple[int, int, bytes]] = []

    def add(self, n: int, pos: int, raw: bytes) -> None:
        self.pending.append((n, pos, raw[3:] if n == 1 and raw.startswith(BOM) else raw))
        if len(self.pending) >= self.CHUNK:
            self.flush()

    def flush(self) -> None:
        pending, self.pending = self.pending, []
        try:
            objs = json.loads(b"[" + b",".join(raw for _, _, raw in pending) + b"]")
        except ValueError:  # JSON or UTF-8 error somewhere in the chunk
            objs = []
        fast = len(objs) == len(pending) and all(_fields_ok(d) for d in objs)
        for k, (n, pos, raw) in enumerate(pending):
            if fast:
                uid, dur, spk = objs[k]["id"], objs[k]["duration"], objs[k]["speaker"]
            else:
                line = _decode(raw, f"{self.path}:{n}", first=False)
                if not line.strip():  # blank but for non-ASCII white space
                    continue
                u = parse_line(line, f"{self.path}:{n}")
                uid, dur, spk = u.id, u.duration, u.speaker
            self.offsets.append(pos)
            self.durations.append(dur)
            self.speakers.append(self.names.setdefault(spk, len(self.names)))
            self.id_hashes.append(hash(uid))


BOM = b"\xef\xbb\xbf"


def _seconds_ok(v) -> bool:
    return type(v) in (int, float) and 0 <= v < math.inf


def _fields_ok(d) -> bool:
    """What parse_line accepts (a JSON value: no str or number subclasses to consider)."""
    return type(d) is dict and all(type(d.get(k)) is str for k in _STRINGS) \
        and _seconds_ok(d.get("duration")) and _seconds_ok(d.get("offset", 0.0))


_STRINGS = ("id", "audio_path", "text", "speaker")


def _decode(raw: bytes, where: str, first: bool) -> str:
    try:
        return raw.decode("utf-8-sig" if first else "utf-8")  # a BOM is fine
    except UnicodeDecodeError as e:
        raise UserError(f"{where}: not valid UTF-8 (byte {e.start + 1} of the line)") from None


def sample_indices(n_total: int, n: int, seed: int) -> np.ndarray:
    """``min(n, n_total)`` distinct indices of ``range(n_total)`` drawn with ``seed``, sorted
    (so a manifest or shard set is read forwards)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=min(n, n_total), replace=False))


def sample_cmvn(utts: Sequence[Utterance], feats: Callable[[Utterance], "torch.Tensor"],
                dim: int, n: int = 2000, seed: int = 0,
                on_error: Callable[[Utterance, str], None] | None = None,
                dist: "Dist | None" = None) -> dict[str, "torch.Tensor"]:
    """Global CMVN statistics (``{"mean", "std"}``, as ``GlobalCMVN.stats``) over a seeded random
    sample of ``n`` utterances of ``utts`` (a list or a :class:`LazyManifest`); ``feats`` gives an
    utterance's raw features (e.g. ``FeatureSource.raw``). Unreadable audio (UserError) goes to
    ``on_error``, or raises without it. With ``dist`` each rank reads every world-th utterance of
    the sample and the float64 sums are added, so every rank gets the same statistics."""
    import torch

    from asr.features import GlobalCMVN

    rank, world = (dist.rank, dist.world) if dist is not None else (0, 1)
    stats = GlobalCMVN(dim)
    for i in sample_indices(len(utts), n, seed)[rank::world].tolist():
        u = utts[i]
        try:
            stats.accumulate(feats(u))
        except UserError as e:
            if on_error is None:
                raise
            on_error(u, getattr(e, "reason", str(e)))
    if world > 1:
        total = dist.all_sum(torch.cat([stats.sum, stats.sumsq,
                                        torch.tensor([stats.count], dtype=torch.float64)]))
        stats.sum, stats.sumsq, stats.count = total[:dim], total[dim:2 * dim], int(total[-1])
    return stats.stats()
