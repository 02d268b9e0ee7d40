"""CMU AN4 ("census"): download, and train/dev/test manifests from either of its public layouts.

Layouts read:
  * the public git mirror: ``wav/an4_clstk/<spk>/<utt>.wav``, ``etc/an4_train.transcription``
    (test: ``wav/an4test_clstk/``, ``etc/an4_test.transcription``);
  * CMU's ``an4_sphere.tar.gz`` tree: the same under ``an4/`` with ``.sph`` (NIST SPHERE) files.
The dev split is speaker-disjoint from train: all utterances of the given dev speakers (default:
the project's 8 dev speakers, ``DEV_SPEAKERS``, when the copy has them all, else 8 speakers chosen by
a fixed-seed draw). The test part is prepared whenever it is present.

Download (``download_an4``): CMU's ``an4_sphere.tar.gz`` (train and test parts), with the public git
mirror's archive as the fallback. No checksum is published for either, and none could be taken
here (this project's machines reach no web server but the package registries), so the first
complete download's SHA-256 and size are recorded beside it (``<archive>.digest.json``) and every
later run or re-download is checked against that record (trust on first use); ``sha256=`` pins a
digest instead.
"""

from __future__ import annotations

import datetime
import json
import logging
import random
import re
from pathlib import Path

import soundfile as sf

from asr.errors import UserError
from asr.fileio import atomic_write_text
from asr.manifest import Utterance, write_manifest
from data_prep.download import download, extract, file_digest

log = logging.getLogger(__name__)

MIRROR_COMMIT = "b567d132f43304e70a2b2eca6077f22255311812"  # github.com/cmusphinx/an4, 2022-10-03
# name -> (URL, archive file name, folder the archive unpacks to)
SOURCES = {
    "cmu": ("http://www.speech.cs.cmu.edu/databases/an4/an4_sphere.tar.gz", "an4_sphere.tar.gz", "an4"),
    "github": (f"https://github.com/cmusphinx/an4/archive/{MIRROR_COMMIT}.tar.gz",
               f"an4-{MIRROR_COMMIT}.tar.gz", f"an4-{MIRROR_COMMIT}"),
}
# The dev split of this project's results (recipes/an4/RESULTS.md): all utterances of 8 training
# speakers; the same list as ../shared/data/an4/splits/dev_speakers.txt.
DEV_SPEAKERS = ["fash", "flmm2", "mblb", "mdcs2", "mgah", "mkem", "mnjl", "mskh"]

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
    """``DEV_SPEAKERS`` when all are present, else ``n`` speakers (fewer for a small copy, always
    leaving one for training) drawn with a fixed seed."""
    if len(speakers) < 2:
        raise UserError("AN4: a speaker-disjoint dev split needs at least 2 speakers")
    if n == len(DEV_SPEAKERS) and set(DEV_SPEAKERS) < set(speakers):
        return list(DEV_SPEAKERS)
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



def _digest_record(archive: Path) -> Path:
    return archive.with_name(archive.name + ".digest.json")


def _fetch_verified(url: str, archive: Path, sha256: str | None) -> dict | None:
    """``download`` checked against ``sha256``, else the recorded first download's digest.
    Returns the digest record to write once the archive has unpacked (None: keep the record)."""
    record = _digest_record(archive)
    known = json.loads(record.read_text(encoding="utf-8")) if record.is_file() else None
    want = sha256 or (known or {}).get("sha256")
    try:
        download(url, archive, sha256=want)
    except UserError as e:
        if known and not sha256 and "checksum mismatch" in str(e):
            raise UserError(f"{e} (the expected digest is the first download's, recorded in "
                            f"{record}; remove that file to accept the new archive)") from None
        raise
    if known is not None and known.get("sha256") == want:
        return None
    return {"url": url, "bytes": archive.stat().st_size,
            "sha256": want or file_digest(archive, "sha256"),
            "recorded": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}


def _record(archive: Path, rec: dict | None) -> None:
    if rec is None:
        return
    atomic_write_text(_digest_record(archive), json.dumps(rec, indent=1) + "\n")
    log.info("AN4: no checksum is published; recorded this download's sha256 %s (%d bytes) in "
             "%s, later downloads are checked against it", rec["sha256"], rec["bytes"],
             _digest_record(archive))


def download_an4(target_dir: str | Path, source: str = "auto", url: str | None = None,
                 sha256: str | None = None) -> Path:
    """Download and unpack AN4 into ``target_dir``; return the corpus folder for ``prepare_an4``.

    Args:
        target_dir (path): download folder (archives, digest records and the unpacked corpus).
        source (str): "cmu" (an4_sphere.tar.gz), "github" (the git mirror's archive) or "auto"
            (CMU, then the mirror when CMU cannot be reached).
        url (str, optional): another address of an archive in either layout (e.g. a local
            mirror); overrides ``source``.
        sha256 (str, optional): the archive's expected SHA-256 (default: the recorded first
            download's, if any).

    A rerun with everything in place downloads nothing; an interrupted download resumes.
    """
    target = Path(target_dir)
    if url:
        name = url.rstrip("/").rsplit("/", 1)[-1] or "an4.tar.gz"
        candidates = [(url, name, None)]
    elif source in SOURCES:
        candidates = [SOURCES[source]]
    elif source == "auto":
        candidates = [SOURCES["cmu"], SOURCES["github"]]
    else:
        raise UserError(f"AN4 download source must be auto, cmu or github, not '{source}'")
    failures = []
    for address, name, folder in candidates:
        archive = target / name
        try:
            rec = _fetch_verified(address, archive, sha256)
        except UserError as e:
            if "checksum mismatch" in str(e):
                raise  # a changed archive is never silently replaced by another source
            failures.append(str(e).removeprefix("download of "))
            continue
        extract(archive, target)
        _record(archive, rec)  # only an archive that unpacked becomes the trusted digest
        return find_root(target / folder) if folder else _unpacked_root(target)
    raise UserError("could not download AN4 (" + "; ".join(failures) + "). Connect to the "
                    "internet and rerun (a partial download resumes), or use a local copy: "
                    "recipes/an4/run.sh --corpus DIR (asr prepare an4 --corpus DIR)")


def _unpacked_root(target: Path) -> Path:
    """The AN4 folder inside ``target`` after unpacking an archive of unknown top folder."""
    for cand in [target, *sorted(p for p in target.iterdir() if p.is_dir())]:
        try:
            return find_root(cand)
        except UserError:
            continue
    raise UserError(f"{target}: the downloaded archive holds no AN4 corpus")
