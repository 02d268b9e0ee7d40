"""CMU AN4 ("census") -> train/dev/test manifests, from either of its public layouts.

Layouts read:
  * the public git mirror: ``wav/an4_clstk/<spk>/<utt>.wav``, ``etc/an4_train.transcription``
    (test: ``wav/an4test_clstk/``, ``etc/an4_test.transcription``);
  * CMU's ``an4_sphere.tar.gz`` tree: the same under ``an4/`` with ``.sph`` (NIST SPHERE) files.
The dev split is speaker-disjoint from train: all utterances of the given dev speakers (default:
8 speakers chosen by a fixed-seed draw). The test part is prepared whenever it is present.
"""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import soundfile as sf

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, write_manifest

_LINE = re.compile(r"^(?P<text>.*)\((?P<id>[^()]+)\)\s*$")
_AUDIO = (".wav", ".sph", ".WAV", ".SPH", ".flac")


def find_root(corpus_dir: Path) -> Path:
    """The folder holding ``etc/`` and ``wav/`` (the corpus dir itself or its ``an4/``)."""
    for cand in (corpus_dir, corpus_dir / "an4"):
        if (cand / "etc" / "an4_train.transcription").is_file() and (cand / "wav").is_dir():
            return cand
    raise UserError(f"{corpus_dir}: not an AN4 corpus (expected etc/an4_train.transcription "
                    "and wav/, or an4/etc/... from an4_sphere.tar.gz)")


def read_transcription(path: Path) -> list[tuple[str, str]]:
    """``<s> TEXT </s> (utt-id)`` lines -> [(utt_id, TEXT)]; markup tokens in <> are dropped."""
    out = []
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        m = _LINE.match(line.strip())
        if not m:
            raise UserError(f"{path}:{n}: expected '<s> TEXT </s> (utterance-id)'")
        words = [w for w in m["text"].split() if not (w.startswith("<") and w.endswith(">"))]
        out.append((m["id"].strip(), " ".join(words)))
    return out


def _part(root: Path, wav_dir: str, trans: str) -> list[Utterance]:
    files = {p.stem: p for p in (root / "wav" / wav_dir).rglob("*") if p.suffix in _AUDIO}
    utts = []
    for uid, text in read_transcription(root / "etc" / trans):
        path = files.get(uid)
        if path is None:
            raise UserError(f"{root / 'etc' / trans}: no audio file for '{uid}' under "
                            f"{root / 'wav' / wav_dir}")
        utts.append(Utterance(uid, str(path.resolve()), round(sf.info(str(path)).duration, 4),
                              text, path.parent.name))
    return utts


def default_dev_speakers(speakers: list[str], n: int = 8, seed: int = 0) -> list[str]:
    """``n`` speakers (fewer for a small copy, always leaving one for training), fixed seed."""
    if len(speakers) < 2:
        raise UserError("AN4: a speaker-disjoint dev split needs at least 2 speakers")
    return sorted(random.Random(seed).sample(sorted(speakers), min(n, len(speakers) - 1)))


def prepare_an4(corpus_dir: Path, out_dir: Path, dev_speakers: list[str] | None = None
                ) -> dict[str, Path]:
    """Write ``an4_train.jsonl``, ``an4_dev.jsonl`` and (when present) ``an4_test.jsonl`` to ``out_dir``.

    Safe to rerun: a marker records the inputs, and matching outputs are left untouched.
    """
    corpus_dir, out_dir = Path(corpus_dir), Path(out_dir)
    root = find_root(corpus_dir)
    has_test = (root / "etc" / "an4_test.transcription").is_file()
    marker = out_dir / ".an4.done"
    key = json.dumps({"root": str(root.resolve()), "dev": dev_speakers, "test": has_test})
    outs = {s: out_dir / f"an4_{s}.jsonl" for s in ["train", "dev"] + (["test"] if has_test else [])}
    if marker.is_file() and marker.read_text() == key and all(p.is_file() for p in outs.values()):
        return outs
    utts = _part(root, "an4_clstk", "an4_train.transcription")
    speakers = sorted({u.speaker for u in utts})
    dev = set(dev_speakers) if dev_speakers else set(default_dev_speakers(speakers))
    unknown = dev - set(speakers)
    if unknown:
        raise UserError(f"dev speakers not in the AN4 training part: {', '.join(sorted(unknown))}")
    write_manifest(outs["train"], [u for u in utts if u.speaker not in dev])
    write_manifest(outs["dev"], [u for u in utts if u.speaker in dev])
    if has_test:
        write_manifest(outs["test"], _part(root, "an4test_clstk", "an4_test.transcription"))
    atomic_write_text(marker, key)
    return outs

