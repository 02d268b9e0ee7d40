"""yesno (OpenSLR 1): download, and manifests for its train/test halves.

60 files ``waves_yesno/0_1_0_0_1_0_1_1.wav`` (8 kHz, one male speaker saying Hebrew "yes"/"no"
eight times); the transcript is the file name, 1 = YES and 0 = NO. The split follows lhotse
``recipes/yesno.py`` (used by icefall ``egs/yesno``): sort the 60 files by name, even positions are
train and odd positions test, 30 each.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from asr.errors import UserError
from asr.manifest import Utterance
from data_prep.common import already_prepared, audio_duration, require_dir, write_splits
from data_prep.download import download_and_extract

log = logging.getLogger(__name__)

URL = "https://www.openslr.org/resources/1/waves_yesno.tar.gz"
# From torchaudio datasets/yesno.py (_RELEASE_CONFIGS["release1"]["checksum"]).
SHA256 = "c3f49e0cca421f96b75b41640749167b52118f232498667ca7a5f9416aef8e73"
SPEAKER = "yesno"
_NAME = re.compile(r"^[01](_[01]){7}$")


def download_yesno(target_dir: str | Path, url: str = URL, sha256: str | None = SHA256) -> Path:
    """Download and unpack waves_yesno.tar.gz into ``target_dir``; returns ``target_dir/waves_yesno``.

    ``url`` may name a mirror; ``sha256=None`` skips the check."""
    download_and_extract(url, target_dir, sha256=sha256)
    return Path(target_dir) / "waves_yesno"


def _utterance(wav: Path) -> Utterance:
    text = " ".join("YES" if w == "1" else "NO" for w in wav.stem.split("_"))
    return Utterance(wav.stem, str(wav.resolve()), audio_duration(wav), text, SPEAKER)


def prepare_yesno(corpus_dir: str | Path, out_dir: str | Path) -> dict[str, Path]:
    """Write ``yesno_train.jsonl`` and ``yesno_test.jsonl``; returns {"train": path, "test": path}.

    Args:
        corpus_dir (path): the ``waves_yesno`` folder (or the folder holding it).
        out_dir (path): where the manifests go.
    """
    corpus = require_dir(corpus_dir, "yesno corpus folder")
    if (corpus / "waves_yesno").is_dir():
        corpus = corpus / "waves_yesno"
    params = {"corpus_dir": str(corpus.resolve())}
    done = already_prepared(out_dir, "yesno", params)
    if done:
        return done
    wavs = sorted(p for p in corpus.glob("*.wav") if _NAME.match(p.stem))
    if not wavs:
        raise UserError(f"no yesno files like 0_1_0_0_1_0_1_1.wav in {corpus}")
    if len(wavs) != 60:
        log.warning("yesno: expected 60 files in %s, found %d", corpus, len(wavs))
    utts = [_utterance(w) for w in wavs]
    return write_splits(out_dir, "yesno", {"train": utts[::2], "test": utts[1::2]}, params)
