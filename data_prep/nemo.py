"""NeMo JSONL manifests <-> ours: ``audio_filepath, duration, text, offset?`` per line.

NeMo lines carry no utterance id and usually no speaker. On import the id is taken from an ``id``
or ``utt_id`` field if present, else from the audio file name (plus ``-<offset cs>`` for segments,
plus ``-<n>`` if still not unique); the speaker from ``speaker`` if present, else ``unknown``.
Relative ``audio_filepath`` values are resolved against the NeMo manifest's folder, as NeMo does.
NeMo's ``duration`` is kept (it is the segment length when ``offset`` is set); when missing, it is
read from the audio header. Other fields are kept as extra fields. Export writes NeMo's fields plus
``speaker`` and ``id`` (NeMo ignores keys it does not know).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, read_manifest
from data_prep.common import already_prepared, audio_duration, write_splits

NEMO_KEYS = ("audio_filepath", "duration", "text", "offset")
UNKNOWN_SPEAKER = "unknown"


def _utterance(d: dict, where: str, base: Path, taken: set[str]) -> Utterance:
    if not isinstance(d, dict) or not isinstance(d.get("audio_filepath"), str):
        raise UserError(f"{where}: expected a JSON object with a string 'audio_filepath'")
    audio = Path(d["audio_filepath"])
    audio = (audio if audio.is_absolute() else base / audio).resolve()
    if not audio.is_file():
        raise UserError(f"{where}: audio file not found: {audio}")
    offset = d.get("offset")
    dur = d.get("duration")
    if dur is None:
        dur = audio_duration(audio) - float(offset or 0.0)
    if isinstance(dur, bool) or not isinstance(dur, (int, float)) or dur < 0:
        raise UserError(f"{where}: 'duration' must be a non-negative number, got {dur!r}")
    utt_id = d.get("id") or d.get("utt_id")
    if not utt_id:
        utt_id = audio.stem if not offset else f"{audio.stem}-{round(float(offset) * 100):07d}"
    base_id, n = str(utt_id), 1
    while utt_id in taken:
        n += 1
        utt_id = f"{base_id}-{n}"
    taken.add(utt_id)
    extra = {k: v for k, v in d.items() if k not in ("audio_filepath", "duration", "text", "speaker", "id", "utt_id")}
    speaker = d.get("speaker")
    return Utterance(str(utt_id), str(audio), float(dur), str(d.get("text", "")),
                     str(speaker) if speaker not in (None, "") else UNKNOWN_SPEAKER, extra)


def nemo_to_utterances(nemo_manifest: str | os.PathLike) -> list[Utterance]:
    """Read a NeMo JSONL manifest; UserError naming file:line on a bad line."""
    p = Path(nemo_manifest)
    if not p.is_file():
        raise UserError(f"NeMo manifest not found: {p}")
    utts, taken, base = [], set(), p.parent.resolve()
    with open(p, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{p}:{n}: not valid JSON ({e.msg})") from None
            utts.append(_utterance(d, f"{p}:{n}", base, taken))
    return utts


def prepare_nemo(nemo_manifest: str | os.PathLike, out_dir: str | Path, name: str | None = None) -> dict[str, Path]:
    """Import a NeMo manifest as ``nemo_<name>.jsonl`` (name defaults to the file's stem)."""
    p = Path(nemo_manifest)
    if not p.is_file():
        raise UserError(f"NeMo manifest not found: {p}")
    name = name or p.stem
    params = {"manifest": str(p.resolve()), "name": name, "mtime_ns": p.stat().st_mtime_ns}
    done = already_prepared(out_dir, "nemo", params, marker=f"nemo_{name}")
    if done:
        return done
    return write_splits(out_dir, "nemo", {name: nemo_to_utterances(p)}, params, marker=f"nemo_{name}")


def utterances_to_nemo(utts: list[Utterance], nemo_manifest: str | os.PathLike) -> Path:
    """Write utterances as a NeMo JSONL manifest (absolute audio paths); returns its path."""
    lines = []
    for u in utts:
        d = {"audio_filepath": u.audio_path, "duration": u.duration, "text": u.text}
        if "offset" in u.extra:
            d["offset"] = u.extra["offset"]
        d.update({k: v for k, v in u.extra.items() if k not in d})
        d.update(speaker=u.speaker, id=u.id)
        lines.append(json.dumps(d, ensure_ascii=False) + "\n")
    atomic_write_text(nemo_manifest, "".join(lines))
    return Path(nemo_manifest)


def manifest_to_nemo(manifest: str | os.PathLike, nemo_manifest: str | os.PathLike) -> Path:
    """Export one of our JSONL manifests to NeMo's format; returns the NeMo manifest's path."""
    return utterances_to_nemo(read_manifest(manifest), nemo_manifest)
