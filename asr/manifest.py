"""JSONL manifests: one utterance a line, the only interface between data_prep/ and asr/.

Each line is a JSON object with the fields ``id, audio_path, duration, text, speaker``
(lhotse/NeMo-style names). ``audio_path`` is absolute, or relative to the manifest's folder.
Optional fields (``offset`` for a segment start in seconds, ``lang``...) are kept as they are.
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

from asr.errors import UserError
from asr.fileio import atomic_write_text

REQUIRED = ("id", "audio_path", "duration", "text", "speaker")


@dataclass
class Utterance:
    """One manifest line."""

    id: str
    audio_path: str
    duration: float
    text: str
    speaker: str
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        extra = d.pop("extra")
        d.update(extra)
        return json.dumps(d, ensure_ascii=False)


def json_object(line: str, where: str) -> dict:
    """One JSONL line as a dict; UserError naming ``where`` ("file:line") otherwise."""
    try:
        d = json.loads(line)
    except json.JSONDecodeError as e:
        raise UserError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(d, dict):
        raise UserError(f"{where}: expected a JSON object, got {type(d).__name__}")
    return d


def parse_line(line: str, where: str, base: Path | None = None) -> Utterance:
    """Parse one manifest line; ``where`` ("file:line") goes into error messages."""
    d = json_object(line, where)
    missing = [k for k in REQUIRED if k not in d]
    if missing:
        raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    for k in ("id", "audio_path", "text", "speaker"):
        if not isinstance(d[k], str):
            raise UserError(f"{where}: field '{k}' must be a string, got {d[k]!r}")
    for k in ("duration", "offset"):
        v = d.get(k, 0.0)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v < math.inf:
            raise UserError(f"{where}: field '{k}' must be a non-negative number of seconds, "
                            f"got {v!r}")
    dur = d["duration"]
    path = d["audio_path"]
    if base is not None and not os.path.isabs(path):
        path = str(base / path)
    extra = {k: v for k, v in d.items() if k not in REQUIRED}
    return Utterance(d["id"], path, float(dur), d["text"], d["speaker"], extra)


def read_manifest(path: str | os.PathLike) -> list[Utterance]:
    """Read a JSONL (or JSONL.gz) manifest. Raises UserError naming the file and line on any
    problem, including duplicate ids."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"manifest not found: {p}")
    utts: list[Utterance] = []
    seen: dict[str, int] = {}
    with (gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")) as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")  # a BOM is fine
            except UnicodeDecodeError as e:
                raise UserError(f"{p}:{n}: not valid UTF-8 (byte {e.start + 1} of the line)"
                                ) from None
            if not line.strip():
                continue
            u = parse_line(line, f"{p}:{n}", base=p.parent.resolve())
            if u.id in seen:
                raise UserError(f"{p}:{n}: duplicate id '{u.id}' (first on line {seen[u.id]})")
            seen[u.id] = n
            utts.append(u)
    return utts


def write_manifest(path: str | os.PathLike, utts: Iterable[Utterance]) -> None:
    """Write utterances as JSONL, atomically."""
    atomic_write_text(path, "".join(u.to_json() + "\n" for u in utts))
