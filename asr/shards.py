"""Tar shards of a manifest (WebDataset layout): writing them (``asr shard``) and their index.

A shard ``shard-NNNNNN.tar`` holds, per utterance in manifest order, ``<key>.json`` (the manifest
fields: id, duration, text, speaker, sample_rate, the original audio_path and any extra field but
``offset``) and ``<key>.<ext>``: the audio file's bytes as they are (``copy``), or FLAC (24-bit)
for a segment of a longer file (an ``offset`` line) and with ``audio="flac"``. The key is the
utterance id with ``%``, ``.`` and ``/`` escaped (WebDataset cuts a key at the first dot).

Written atomically and resumably: a shard is written to a temporary file, renamed into place,
and only then marked done by ``shard-NNNNNN.done`` (JSON: its manifest range, utterances,
durations, size). A rerun keeps the done shards that still match the manifest (size and mtime)
and the settings, and writes from the first one that does not; a killed run leaves at most a
temporary file (removed by the next run) or a tar without its ``.done`` (rewritten).
``shards.json``, written last, is the index the training reader uses: shard names, utterances
and per-utterance durations per shard, totals.
"""

from __future__ import annotations

import io
import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from asr.audio import AudioError, audio_info, read_audio
from asr.corpus import LazyManifest
from asr.errors import UserError
from asr.fileio import atomic_write_text, check_output_dir, temp_file_beside
from asr.manifest import Utterance

log = logging.getLogger(__name__)

INDEX = "shards.json"
VERSION = 1
_NAME = re.compile(r"^shard-(\d{6})\.(tar|done)$")
_EXT = re.compile(r"^[a-z0-9]{1,8}$")
_TAR_OVERHEAD = 2048  # two member headers and their padding, per utterance (size estimate)


@dataclass(frozen=True)
class ShardSettings:
    """How a manifest is cut: at most ``shard_size`` utterances and ``max_shard_bytes`` bytes of
    audio and metadata per shard (None: no limit; a shard holds at least one utterance).
    ``audio``: "copy" stores the files' bytes, "flac" re-encodes. ``skip_bad``: unreadable audio
    is left out and listed in shards.json (otherwise it stops the run with a one-line error)."""

    shard_size: int | None = 1000
    max_shard_bytes: int | None = None
    audio: str = "copy"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if self.audio not in ("copy", "flac"):
            raise UserError(f"audio must be copy or flac, got {self.audio!r}")
        for name in ("shard_size", "max_shard_bytes"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UserError(f"{name} must be >= 1, got {v}")


def sample_key(uid: str) -> str:
    """The WebDataset key of an utterance id: ``%``, ``.`` and ``/`` percent-escaped."""
    return uid.replace("%", "%25").replace(".", "%2E").replace("/", "%2F")


def shard_name(k: int) -> str:
    return f"shard-{k:06d}.tar"


def _member(u: Utterance, audio: str) -> tuple[bytes, str, int]:
    """(audio bytes, extension, sample rate) of one utterance; AudioError when unreadable."""
    ext = Path(u.audio_path).suffix.lower().lstrip(".")
    if audio == "copy" and "offset" not in u.extra and _EXT.match(ext):
        info = audio_info(u.audio_path)  # missing, empty, not audio, truncated header
        return Path(u.audio_path).read_bytes(), ext, info.samplerate
    offset = float(u.extra.get("offset", 0.0))
    data, sr = read_audio(u.audio_path, offset, u.duration if "offset" in u.extra else None)
    buf = io.BytesIO()
    sf.write(buf, data, sr, format="FLAC", subtype="PCM_24")
    return buf.getvalue(), "flac", sr


def _metadata(u: Utterance, sr: int) -> dict:
    extra = {k: v for k, v in u.extra.items() if k != "offset"}
    return {"id": u.id, "duration": u.duration, "text": u.text, "speaker": u.speaker,
            "sample_rate": sr, "audio_path": u.audio_path, **extra}


@dataclass
class ShardReport:
    """What :func:`write_shards` did."""

    shards: int = 0
    written: int = 0  # shards written by this run (the others were already done)
    utterances: int = 0
    seconds: float = 0.0
    skipped: list[list[str]] = field(default_factory=list)  # [id, reason]
    up_to_date: bool = False

    def summary(self, out: Path) -> str:
        state = "up to date" if self.up_to_date else f"{self.written} written now"
        bad = f", {len(self.skipped)} unreadable left out" if self.skipped else ""
        return (f"{self.shards} shards ({state}), {self.utterances} utterances, "
                f"{self.seconds / 3600:.2f} h{bad}: {out / INDEX}")


class _Shard:
    """One shard being written: a TarWriter on a temporary file beside its final name."""

    def __init__(self, out: Path, k: int, start: int):
        import webdataset as wds

        self.path, self.k, self.start = out / shard_name(k), k, start
        fd, self.tmp = temp_file_beside(self.path)
        self.f = os.fdopen(fd, "wb")
        self.tar = wds.TarWriter(self.f, encoder=False)
        self.durations: list[float] = []
        self.skipped: list[list[str]] = []
        self.bytes = 0

    def add(self, u: Utterance, audio: bytes, ext: str, sr: int) -> None:
        meta = json.dumps(_metadata(u, sr), ensure_ascii=False).encode("utf-8")
        self.tar.write({"__key__": sample_key(u.id), "json": meta, ext: audio})
        self.durations.append(u.duration)
        self.bytes += len(meta) + len(audio) + _TAR_OVERHEAD

    def finish(self, source: dict, end: int) -> dict:
        self.tar.close()
        self.f.flush()
        os.fsync(self.f.fileno())
        self.f.close()
        os.replace(self.tmp, self.path)
        rec = {"source": source, "start": self.start, "end": end, "name": self.path.name,
               "count": len(self.durations), "tar_bytes": self.path.stat().st_size,
               "durations": self.durations, "skipped": self.skipped}
        atomic_write_text(self.path.with_suffix(".done"), json.dumps(rec, ensure_ascii=False))
        return rec

    def abort(self) -> None:
        try:
            self.tar.close()
        finally:
            self.f.close()
        if os.path.exists(self.tmp):
            os.unlink(self.tmp)


def _done(out: Path, k: int, source: dict, start: int) -> dict | None:
    """Shard k's record when it is done, for this source and settings, starting at ``start``."""
    try:
        rec = json.loads((out / shard_name(k)).with_suffix(".done").read_text(encoding="utf-8"))
        ok = rec["source"] == source and rec["start"] == start \
            and (out / rec["name"]).stat().st_size == rec["tar_bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rec if ok else None


def write_shards(manifest: str | os.PathLike, out: str | os.PathLike,
                 settings: ShardSettings = ShardSettings(), progress: bool = True
                 ) -> ShardReport:
    """Cut ``manifest`` into tar shards in ``out`` and write ``out/shards.json``; resumable
    (see the module's docstring). Raises UserError for a bad manifest or unreadable audio."""
    out = Path(out)
    check_output_dir(out)
    m = LazyManifest(manifest)
    if not len(m):
        raise UserError(f"manifest {manifest} has no utterances")
    mp = Path(manifest).resolve()
    st = mp.stat()
    source = {"manifest": str(mp), "size": st.st_size, "mtime_ns": st.st_mtime_ns,
              "utterances": len(m), "settings": asdict(settings)}
    old = _read_index(out)
    if old is not None and old.get("source") == source and all(
            (out / s["name"]).is_file() and (out / s["name"]).stat().st_size == s["tar_bytes"]
            for s in old["shards"]):
        return ShardReport(len(old["shards"]), 0, old["utterances"], old["seconds"],
                           old["skipped"], up_to_date=True)
    out.mkdir(parents=True, exist_ok=True)
    records: list[dict] = []
    start = 0
    while (rec := _done(out, len(records), source, start)) is not None:
        records.append(rec)
        start = rec["end"]
    report = ShardReport(written=0)
    if start < len(m):
        report.written = _write_from(m, out, settings, source, start, records, progress)
    _remove_stale(out, len(records))
    index = {"version": VERSION, "source": source,
             "shards": [{k: r[k] for k in ("name", "count", "tar_bytes", "durations")}
                        for r in records],
             "utterances": sum(r["count"] for r in records),
             "seconds": sum(sum(r["durations"]) for r in records),
             "skipped": [s for r in records for s in r["skipped"]]}
    atomic_write_text(out / INDEX, json.dumps(index, ensure_ascii=False))
    report.shards, report.utterances = len(records), index["utterances"]
    report.seconds, report.skipped = index["seconds"], index["skipped"]
    return report


def _write_from(m: LazyManifest, out: Path, settings: ShardSettings, source: dict, start: int,
                records: list[dict], progress: bool) -> int:
    from tqdm import tqdm

    written = 0
    cur = _Shard(out, len(records), start)
    try:
        for i, u in enumerate(tqdm(m.iter_range(start), total=len(m) - start, unit="utt",
                                   desc="sharding", disable=None if progress else True,
                                   leave=False), start):
            try:
                audio, ext, sr = _member(u, settings.audio)
            except AudioError as e:
                if not settings.skip_bad:
                    raise UserError(f"utterance {u.id}: {e}") from None
                log.warning("skipping utterance %s: %s", u.id, e)
                cur.skipped.append([u.id, e.reason])
                continue
            size = len(audio) + _TAR_OVERHEAD
            full = settings.shard_size is not None and len(cur.durations) >= settings.shard_size
            big = settings.max_shard_bytes is not None \
                and cur.bytes + size > settings.max_shard_bytes
            if cur.durations and (full or big):
                records.append(cur.finish(source, i))
                written += 1
                cur = _Shard(out, len(records), i)
            cur.add(u, audio, ext, sr)
        if cur.durations or cur.skipped:
            records.append(cur.finish(source, len(m)))
            written += 1
        else:
            cur.abort()
    except BaseException:
        cur.abort()
        raise
    return written


def _remove_stale(out: Path, n: int) -> None:
    """Shards (and .done marks) of an earlier, longer cut of the manifest."""
    for p in out.iterdir():
        mt = _NAME.match(p.name)
        if mt and int(mt.group(1)) >= n:
            p.unlink()


def _read_index(out: Path) -> dict | None:
    try:
        d = json.loads((out / INDEX).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) and d.get("version") == VERSION else None


@dataclass
class ShardInfo:
    name: str
    count: int
    durations: np.ndarray  # float64 seconds, in the shard's order


@dataclass
class ShardSet:
    """A shard folder's index (``shards.json``): what training plans its batches from."""

    dir: Path
    shards: list[ShardInfo]
    seconds: float

    @classmethod
    def load(cls, path: str | os.PathLike) -> "ShardSet":
        d = Path(path)
        index = _read_index(d)
        if index is None:
            raise UserError(f"{d / INDEX}: not found or not a shard index (run asr shard)")
        shards = []
        for s in index["shards"]:
            p = d / s["name"]
            if not p.is_file() or p.stat().st_size != s["tar_bytes"]:
                raise UserError(f"shard {p} is missing or changed since {INDEX} was written")
            shards.append(ShardInfo(s["name"], s["count"],
                                    np.asarray(s["durations"], dtype=np.float64)))
        return cls(d, shards, float(index["seconds"]))

    @property
    def utterances(self) -> int:
        return sum(s.count for s in self.shards)
