"""Readers for scoring inputs: transcripts (JSONL manifest or Kaldi ``text``) and speakers.

A transcript file is auto-detected: a first non-blank line starting with ``{`` means JSONL:
a full manifest (read with :func:`asr.manifest.read_manifest`; ``text`` and ``speaker`` are
used) or, when the first line lacks manifest fields, JSONL with just ``id`` and ``text`` per
line (such as the evaluator's ``hyps.jsonl``). Anything else is read as ``<utt-id> <text>``
lines (Kaldi ``text`` format; an id alone means empty text).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from asr.errors import UserError
from asr.manifest import REQUIRED, json_object, read_manifest

MANIFEST = "jsonl-manifest"
JSONL_TEXT = "jsonl-id-text"
KALDI_TEXT = "kaldi-text"


@dataclass
class Transcripts:
    """Texts keyed by utterance id, in file order.

    Attributes:
        path: The file read.
        format: ``"jsonl-manifest"``, ``"jsonl-id-text"`` or ``"kaldi-text"``.
        texts: id -> raw text.
        speakers: id -> speaker for a manifest, else None.
    """

    path: str
    format: str
    texts: dict[str, str]
    speakers: dict[str, str] | None = None


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise UserError(f"transcript file not found: {path}")
    try:
        return path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 text (byte {e.start})") from None


def detect_format(path: str | os.PathLike) -> str:
    """``"jsonl-manifest"`` if the first non-blank line starts with ``{``, else ``"kaldi-text"``."""
    for line in _lines(Path(path)):
        if line.strip():
            return MANIFEST if line.lstrip().startswith("{") else KALDI_TEXT
    return KALDI_TEXT


def _read_jsonl_text(path: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    for n, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        d = json_object(line, f"{path}:{n}")
        for k in ("id", "text"):
            if not isinstance(d.get(k), str):
                raise UserError(f"{path}:{n}: field '{k}' must be a string, got {d.get(k)!r}")
        if d["id"] in texts:
            raise UserError(f"{path}:{n}: duplicate id '{d['id']}'")
        texts[d["id"]] = d["text"]
    return texts


def _is_full_manifest(path: Path) -> bool:
    n, first = next((n, line) for n, line in enumerate(_lines(path), 1) if line.strip())
    return all(k in json_object(first, f"{path}:{n}") for k in REQUIRED)


def _read_id_text(path: Path) -> dict[str, str]:
    texts: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, line in enumerate(_lines(path), 1):
        parts = line.strip().split(maxsplit=1)
        if not parts:
            continue
        uid = parts[0]
        if uid in first_line:
            raise UserError(f"{path}:{n}: duplicate id '{uid}' (first on line {first_line[uid]})")
        first_line[uid] = n
        texts[uid] = parts[1] if len(parts) > 1 else ""
    return texts


def read_transcripts(path: str | os.PathLike) -> Transcripts:
    """Read a JSONL manifest, JSONL ``{id, text}`` lines, or a Kaldi ``text`` / plain ``id text``
    file (auto-detected).

    Raises:
        UserError: missing file, bad line (naming file:line) or duplicate id.
    """
    p = Path(path)
    fmt = detect_format(p)
    if fmt == MANIFEST and _is_full_manifest(p):
        utts = read_manifest(p)
        return Transcripts(str(p), fmt, {u.id: u.text for u in utts},
                           {u.id: u.speaker for u in utts})
    if fmt == MANIFEST:
        return Transcripts(str(p), JSONL_TEXT, _read_jsonl_text(p))
    return Transcripts(str(p), fmt, _read_id_text(p))


def read_utt2spk(path: str | os.PathLike) -> dict[str, str]:
    """Read a Kaldi ``utt2spk`` file: ``<utt-id> <speaker>`` per line."""
    p = Path(path)
    out: dict[str, str] = {}
    for n, line in enumerate(_lines(p), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise UserError(f"{p}:{n}: expected '<utt-id> <speaker>', got {len(parts)} field(s)")
        if parts[0] in out:
            raise UserError(f"{p}:{n}: duplicate id '{parts[0]}'")
        out[parts[0]] = parts[1]
    return out


def id_prefix_speaker(utt_id: str) -> str:
    """Kaldi convention: the speaker is the id's prefix before the first '-' (whole id if none)."""
    return utt_id.split("-", 1)[0]


ID_PREFIX_SOURCE = "utterance-id prefix before the first '-' (Kaldi convention)"


def resolve_speakers(ids: Iterable[str], ref: Transcripts,
                     utt2spk: str | os.PathLike | None = None) -> tuple[dict[str, str], str]:
    """Pick each utterance's speaker and say where it came from.

    Order: an explicit ``utt2spk`` file, else the reference manifest's ``speaker`` field,
    else the id prefix before the first '-'.

    Returns:
        (id -> speaker, one-line description of the source).
    """
    ids = list(ids)
    if utt2spk is not None:
        table = read_utt2spk(utt2spk)
        missing = [u for u in ids if u not in table]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise UserError(f"{utt2spk}: no speaker for utterance '{missing[0]}'{more}")
        return {u: table[u] for u in ids}, f"utt2spk file {utt2spk}"
    if ref.speakers is not None:
        return {u: ref.speakers[u] for u in ids}, "reference manifest 'speaker' field"
    return {u: id_prefix_speaker(u) for u in ids}, ID_PREFIX_SOURCE
