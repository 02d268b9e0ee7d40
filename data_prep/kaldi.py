"""Kaldi data folders <-> manifests: import ``wav.scp``/``text``/``utt2spk``/``segments``, and export.

Import reads ``wav.scp`` (``<rec> <path>``), ``text`` (``<utt> <words...>``), ``utt2spk``
(``<utt> <spk>``) and, if present, ``segments`` (``<utt> <rec> <start> <end>``, end -1 = to the end
of the file). Only plain file paths are accepted in ``wav.scp``: a piped command (``sph2pipe ... |``)
or an ark offset (``foo.ark:123``) is refused with a UserError and never run. Relative paths are
resolved against ``audio_root`` (default: the current folder, as Kaldi scripts do).

Export writes ``wav.scp``, ``text``, ``utt2spk``, ``spk2utt``, ``utt2dur`` and, when any utterance
has an ``offset`` or shares its audio file, ``segments``; lines sorted by key. Kaldi's
``validate_data_dir.sh`` also wants utterance ids to start with their speaker id; this is not
enforced here.
"""

from __future__ import annotations

import logging
import os
import re
from collections import defaultdict
from pathlib import Path

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, read_manifest
from data_prep.common import already_prepared, audio_duration, require_dir, write_splits

log = logging.getLogger(__name__)

_ARK_OFFSET = re.compile(r"\.ark:\d+$")


def _read_table(path: Path, min_fields: int = 2) -> dict[str, str]:
    """``<key> <rest of line>`` lines as a dict; UserError naming file:line on a bad line."""
    table: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        key, _, rest = line.strip().partition(" ")
        rest = rest.strip()
        if min_fields > 1 and not rest:
            raise UserError(f"{path}:{n}: expected '<id> <value>'")
        if key in table:
            raise UserError(f"{path}:{n}: duplicate id '{key}'")
        table[key] = rest
    return table


def _wav_path(value: str, where: str, audio_root: Path) -> Path:
    if value.endswith("|") or value.startswith("|"):
        raise UserError(f"{where}: piped commands in wav.scp are not supported (convert the audio "
                        f"to files first, e.g. with sph2pipe or sox): '{value}'")
    if _ARK_OFFSET.search(value) or value == "-":
        raise UserError(f"{where}: ark offsets and stdin in wav.scp are not supported: '{value}'")
    p = Path(value)
    p = p if p.is_absolute() else audio_root / p
    if not p.is_file():
        raise UserError(f"{where}: audio file not found: {p}")
    return p.resolve()


def kaldi_to_utterances(data_dir: str | Path, audio_root: str | Path | None = None) -> list[Utterance]:
    """Read a Kaldi data folder into utterances (sorted by id).

    Args:
        data_dir (path): folder with ``wav.scp``, ``text``, ``utt2spk`` and optionally ``segments``.
        audio_root (path, optional): base of relative ``wav.scp`` paths (default None: current folder).
    """
    d = require_dir(data_dir, "Kaldi data folder")
    root = Path(audio_root) if audio_root is not None else Path.cwd()
    for name in ("wav.scp", "text", "utt2spk"):
        if not (d / name).is_file():
            raise UserError(f"Kaldi data folder {d} has no '{name}'")
    scp = d / "wav.scp"
    recs = {rec: _wav_path(v, f"{scp} ({rec})", root) for rec, v in _read_table(scp).items()}
    texts = _read_table(d / "text", min_fields=1)
    spk = _read_table(d / "utt2spk")
    durs = {rec: audio_duration(p) for rec, p in recs.items()}
    if (d / "segments").is_file():
        spans = {}
        for utt, rest in _read_table(d / "segments").items():
            f = rest.split()
            try:
                rec, start, end = f[0], float(f[1]), float(f[2])
            except (IndexError, ValueError):
                raise UserError(
                    f"{d / 'segments'}: bad line for '{utt}': expected '<utt> <rec> <start> <end>'") from None
            if rec not in recs:
                raise UserError(f"{d / 'segments'}: '{utt}' names recording '{rec}' not in wav.scp")
            spans[utt] = (rec, start, durs[rec] if end < 0 else end)
    else:
        spans = {rec: (rec, None, None) for rec in recs}
    utts = []
    for utt, (rec, start, end) in sorted(spans.items()):
        if utt not in texts or utt not in spk:
            raise UserError(f"{d}: utterance '{utt}' is missing from {'text' if utt not in texts else 'utt2spk'}")
        if start is None:
            utts.append(Utterance(utt, str(recs[rec]), durs[rec], texts[utt], spk[utt]))
        else:
            utts.append(Utterance(utt, str(recs[rec]), round(end - start, 3), texts[utt], spk[utt], {"offset": start}))
    return utts


def prepare_kaldi(
    data_dir: str | Path, out_dir: str | Path, name: str | None = None, audio_root: str | Path | None = None
) -> dict[str, Path]:
    """Import a Kaldi data folder as ``kaldi_<name>.jsonl`` (name defaults to the folder's name)."""
    d = require_dir(data_dir, "Kaldi data folder")
    name = name or d.resolve().name
    root = Path(audio_root).resolve() if audio_root is not None else Path.cwd()
    stamp = {f: (d / f).stat().st_mtime_ns for f in ("wav.scp", "text", "utt2spk", "segments") if (d / f).is_file()}
    params = {"data_dir": str(d.resolve()), "name": name, "audio_root": str(root), "files": stamp}
    done = already_prepared(out_dir, "kaldi", params, marker=f"kaldi_{name}")
    if done:
        return done
    return write_splits(out_dir, "kaldi", {name: kaldi_to_utterances(d, root)}, params, marker=f"kaldi_{name}")


def _check_id(value: str, what: str, where: str) -> None:
    if not value or any(c.isspace() for c in value):
        raise UserError(f"{where}: {what} '{value}' is empty or contains whitespace, which Kaldi cannot store")


def utterances_to_kaldi(utts: list[Utterance], data_dir: str | Path) -> Path:
    """Write utterances as a Kaldi data folder; returns it."""
    d = Path(data_dir)
    by_path: dict[str, list[Utterance]] = defaultdict(list)
    for u in utts:
        _check_id(u.id, "utterance id", str(d))
        _check_id(u.speaker, "speaker", u.id)
        by_path[u.audio_path].append(u)
    use_segments = any("offset" in u.extra or len(v) > 1 for v in by_path.values() for u in v)
    rec_ids: dict[str, str] = {}
    for path, group in by_path.items():
        if " " in path:
            raise UserError(f"{path}: Kaldi wav.scp cannot hold a path with spaces")
        rec_ids[path] = _unique_rec_id(Path(path).stem, rec_ids) if use_segments else group[0].id
    lines: dict[str, list[str]] = defaultdict(list)
    spk2utt: dict[str, list[str]] = defaultdict(list)
    for u in sorted(utts, key=lambda u: u.id):
        lines["text"].append(f"{u.id} {u.text}")
        lines["utt2spk"].append(f"{u.id} {u.speaker}")
        lines["utt2dur"].append(f"{u.id} {u.duration:.3f}")
        spk2utt[u.speaker].append(u.id)
        if use_segments:
            start = float(u.extra.get("offset", 0.0))
            lines["segments"].append(f"{u.id} {rec_ids[u.audio_path]} {start:.3f} {start + u.duration:.3f}")
    lines["wav.scp"] = sorted(f"{rec} {path}" for path, rec in rec_ids.items())
    lines["spk2utt"] = [f"{s} {' '.join(ids)}" for s, ids in sorted(spk2utt.items())]
    d.mkdir(parents=True, exist_ok=True)
    if not use_segments:
        (d / "segments").unlink(missing_ok=True)
    for name, content in lines.items():
        atomic_write_text(d / name, "".join(line + "\n" for line in content))
    return d


def _unique_rec_id(stem: str, taken: dict[str, str]) -> str:
    used, rec, n = set(taken.values()), stem, 1
    while rec in used:
        n += 1
        rec = f"{stem}-{n}"
    return rec


def manifest_to_kaldi(manifest: str | os.PathLike, data_dir: str | Path) -> Path:
    """Export a JSONL manifest to a Kaldi data folder; returns the folder."""
    return utterances_to_kaldi(read_manifest(manifest), data_dir)
