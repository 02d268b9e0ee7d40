"""TED-LIUM release 3 (OpenSLR 51): download, and segment manifests for the legacy train/dev/test.

Layout: ``TEDLIUM_release-3/legacy/{train,dev,test}/{sph/<talk>.sph, stm/<talk>.stm}``; one SPHERE
file per talk (16 kHz) and STM lines ``<talk> <channel> <speaker> <start> <end> <label> words...``.
Each STM line becomes one manifest entry on the whole-talk audio with ``offset`` (seconds, in the
extra fields) and ``duration`` = end - start. Lines whose text is
``ignore_time_segment_in_scoring`` are dropped. Text stays lower case as in the corpus; the
``<unk>`` token is dropped (``unk=None``, default) or replaced, and split clitics are joined back
(``i 'm`` -> ``i'm``) as Kaldi's ``tedlium/s5_r3/local/join_suffix.py`` does. Ids are
``<talk>-<start cs:07d>-<end cs:07d>``, speaker the STM speaker field.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from asr.errors import UserError
from asr.manifest import Utterance
from data_prep.common import already_prepared, audio_duration, require_dir, write_splits
from data_prep.download import download_and_extract

log = logging.getLogger(__name__)

URL = "https://www.openslr.org/resources/51/TEDLIUM_release-3.tgz"
# From torchaudio datasets/tedlium.py (_RELEASE_CONFIGS["release3"]["checksum"]).
SHA256 = "ad1e454d14d1ad550bc2564c462d87c7a7ec83d4dc2b9210f22ab4973b9eccdb"
SPLITS = ("train", "dev", "test")
IGNORE = "ignore_time_segment_in_scoring"
UNK = "<unk>"


def download_tedlium(target_dir: str | Path, url: str = URL, sha256: str | None = SHA256) -> Path:
    """Download (about 50 GB) and unpack TED-LIUM 3; returns ``target_dir/TEDLIUM_release-3``."""
    download_and_extract(url, target_dir, sha256=sha256)
    return Path(target_dir) / "TEDLIUM_release-3"


def _legacy_root(corpus: Path) -> Path:
    for cand in (corpus / "TEDLIUM_release-3" / "legacy", corpus / "legacy", corpus):
        if (cand / "train").is_dir() or (cand / "dev").is_dir() or (cand / "test").is_dir():
            return cand
    raise UserError(f"no TED-LIUM 3 legacy/{{train,dev,test}} folders in {corpus}")


def _clean_words(words: list[str], unk: str | None, join_suffixes: bool) -> str:
    out: list[str] = []
    for w in words:
        if w == UNK:
            if unk is None:
                continue
            w = unk
        if join_suffixes and w.startswith("'") and out:
            out[-1] += w
        else:
            out.append(w)
    return " ".join(out)


def _talk_utterances(stm: Path, sph_dir: Path, unk: str | None, join_suffixes: bool) -> list[Utterance]:
    talk = stm.stem
    sph = sph_dir / f"{talk}.sph"
    if not sph.is_file():
        raise UserError(f"{stm}: audio {sph} is missing")
    total = audio_duration(sph)
    utts = []
    for n, line in enumerate(stm.read_text(encoding="utf-8").splitlines(), 1):
        fields = line.split()
        if not fields or line.startswith(";;"):
            continue
        if len(fields) < 5:
            raise UserError(f"{stm}:{n}: expected '<talk> <channel> <speaker> <start> <end> ...'")
        speaker, words = fields[2], fields[5:]
        if words and words[0].startswith("<") and words[0] != UNK:  # the <o,f0,male> label
            words = words[1:]
        if words == [IGNORE]:
            continue
        try:
            start, end = float(fields[3]), min(float(fields[4]), total)
        except ValueError:
            raise UserError(f"{stm}:{n}: start/end times are not numbers") from None
        text = _clean_words(words, unk, join_suffixes)
        if not text or end <= start:
            continue
        utt_id = f"{talk}-{round(start * 100):07d}-{round(end * 100):07d}"
        utts.append(Utterance(utt_id, str(sph.resolve()), round(end - start, 3), text, speaker,
                              {"offset": start}))
    return utts


def prepare_tedlium(
    corpus_dir: str | Path,
    out_dir: str | Path,
    splits: Sequence[str] = SPLITS,
    unk: str | None = None,
    join_suffixes: bool = True,
) -> dict[str, Path]:
    """Write ``tedlium_<split>.jsonl`` per split; returns split -> manifest path.

    Args:
        corpus_dir (path): ``TEDLIUM_release-3``, its ``legacy`` folder, or the folder holding it.
        out_dir (path): where the manifests go.
        splits (list[str]): any of train, dev, test (default all three).
        unk (str, optional): replacement for ``<unk>``; None drops it (default None).
        join_suffixes (bool): join ``'s``, ``'m``... to the word before (default True).
    """
    root = _legacy_root(require_dir(corpus_dir, "TED-LIUM corpus folder"))
    bad = [s for s in splits if s not in SPLITS]
    if bad:
        raise UserError(f"unknown TED-LIUM split(s) {', '.join(bad)}: choose from {', '.join(SPLITS)}")
    params = {"corpus_dir": str(root.resolve()), "splits": list(splits), "unk": unk, "join_suffixes": join_suffixes}
    done = already_prepared(out_dir, "tedlium", params)
    if done:
        return done
    out = {}
    for split in splits:
        stm_dir = require_dir(root / split / "stm", f"TED-LIUM {split} stm folder")
        sph_dir = require_dir(root / split / "sph", f"TED-LIUM {split} sph folder")
        utts = [u for stm in sorted(stm_dir.glob("*.stm")) for u in _talk_utterances(stm, sph_dir, unk, join_suffixes)]
        if not utts:
            raise UserError(f"no TED-LIUM segments in {stm_dir}")
        out[split] = sorted(utts, key=lambda u: u.id)
    return write_splits(out_dir, "tedlium", out, params)
