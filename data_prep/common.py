"""Helpers shared by the corpus modules: audio durations, split writing and the "prepared" marker.

Every ``prepare_X`` writes one manifest per split, ``<out_dir>/<corpus>_<split>.jsonl``, and then a
marker ``<out_dir>/.<corpus>.prepared.json`` recording the options used and each manifest's size. A
rerun with the same options finds the marker, checks the manifests are still there and unchanged in
size, and returns without writing anything; different options or a missing/edited manifest redo it.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterable

import soundfile as sf

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, write_manifest

log = logging.getLogger(__name__)


def audio_duration(path: str | os.PathLike) -> float:
    """Duration in seconds from the file header (``soundfile.info``); UserError naming the file."""
    try:
        return float(sf.info(str(path)).duration)
    except (RuntimeError, OSError) as e:  # soundfile's errors are RuntimeErrors
        raise UserError(f"cannot read audio header of {path}: {e}") from None


def require_dir(path: str | os.PathLike, what: str) -> Path:
    """Return ``path`` as a Path, or raise UserError if it is not a folder."""
    p = Path(path)
    if not p.is_dir():
        raise UserError(f"{what} not found or not a folder: {p}")
    return p


def find_ci(parent: Path, name: str) -> Path | None:
    """The child of ``parent`` named ``name`` ignoring case (TIMIT copies come in both cases)."""
    exact = parent / name
    if exact.exists():
        return exact
    if not parent.is_dir():
        return None
    low = name.lower()
    for child in sorted(parent.iterdir()):
        if child.name.lower() == low:
            return child
    return None


def manifest_path(out_dir: Path, corpus: str, split: str) -> Path:
    return out_dir / f"{corpus}_{split}.jsonl"


def _marker(out_dir: Path, name: str) -> Path:
    return out_dir / f".{name}.prepared.json"


def already_prepared(
    out_dir: str | os.PathLike, corpus: str, params: dict[str, Any], marker: str | None = None
) -> dict[str, Path] | None:
    """The split -> manifest map of a finished earlier run with the same ``params``, else None.

    ``marker`` names the marker file when one corpus has several independent preparations in the
    same folder (default: the corpus name)."""
    out = Path(out_dir)
    marker_path = _marker(out, marker or corpus)
    if not marker_path.is_file():
        return None
    try:
        info = json.loads(marker_path.read_text(encoding="utf-8"))
        if info.get("params") != json.loads(json.dumps(params)):
            return None
        result = {}
        for split, entry in info["manifests"].items():
            p = out / entry["file"]
            if not p.is_file() or p.stat().st_size != entry["bytes"]:
                return None
            result[split] = p
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    log.info("%s: already prepared in %s (marker %s), nothing to do", corpus, out, marker_path.name)
    return result


def write_splits(
    out_dir: str | os.PathLike,
    corpus: str,
    splits: dict[str, Iterable[Utterance]],
    params: dict[str, Any],
    marker: str | None = None,
) -> dict[str, Path]:
    """Write ``<corpus>_<split>.jsonl`` for each split, then the marker; returns split -> path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    marker_path = _marker(out, marker or corpus)
    marker_path.unlink(missing_ok=True)  # stale until every manifest below is written
    result: dict[str, Path] = {}
    entries = {}
    for split, utts in splits.items():
        utts = list(utts)
        p = manifest_path(out, corpus, split)
        write_manifest(p, utts)
        result[split] = p
        entries[split] = {"file": p.name, "utterances": len(utts), "bytes": p.stat().st_size}
        log.info("%s: wrote %d utterances to %s", corpus, len(utts), p)
    info = {"corpus": corpus, "params": params, "manifests": entries}
    atomic_write_text(marker_path, json.dumps(info, indent=1, sort_keys=True) + "\n")
    return result
