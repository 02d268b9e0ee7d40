"""Free Spoken Digit Dataset (FSDD): download, and manifests for the official or a per-speaker split.

Layout: ``recordings/{digit}_{speaker}_{index}.wav`` (8 kHz mono, one isolated digit, 50 takes per
digit and speaker; v1.0.10 has 6 speakers, 3000 files). Text is the digit's English name in upper
case (ZERO..NINE); speaker is the name in the file. Splits:

- ``official`` (the README): index 0-4 -> ``test``, 5-49 -> ``train``, same speakers in both;
- ``holdout_speaker="theo"``: that speaker -> ``test``, everyone else -> ``train``
  (speaker-independent evaluation);
- ``split="loso"``: every leave-one-speaker-out fold, splits ``loso_<spk>_train``/``loso_<spk>_test``.

``with_dev=True`` (speaker and loso splits) also gives each fold a development set without
touching its held-out speaker: the training speakers' official test takes (index 0-4) become
``dev`` (``loso_<spk>_dev``), their official train takes (5-49) ``train5`` (``loso_<spk>_train5``);
``train`` still holds all their takes.
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

VERSION = "1.0.10"
URL = f"https://github.com/Jakobovski/free-spoken-digit-dataset/archive/refs/tags/v{VERSION}.tar.gz"
# No published checksum: FSDD ships no release files, and GitHub's generated tag tarballs are not
# guaranteed byte-stable, so there is nothing trustworthy to pin. Left unchecked on purpose.
SHA256: str | None = None
DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")
SPLITS = ("official", "speaker", "loso")
_NAME = re.compile(r"^([0-9])_([A-Za-z]+)_([0-9]+)$")


def download_fsdd(target_dir: str | Path, url: str = URL, sha256: str | None = SHA256) -> Path:
    """Download and unpack the v1.0.10 tag archive; returns the folder holding ``recordings/``."""
    download_and_extract(url, target_dir, sha256=sha256)
    return Path(target_dir) / f"free-spoken-digit-dataset-{VERSION}"


def _recordings(corpus: Path) -> list[tuple[Utterance, int]]:
    """Every ``{digit}_{speaker}_{index}.wav`` as (utterance, index), sorted by id."""
    rec = corpus / "recordings" if (corpus / "recordings").is_dir() else corpus
    out = []
    for wav in sorted(rec.glob("*.wav")):
        m = _NAME.match(wav.stem)
        if not m:
            log.warning("fsdd: skipping %s (not {digit}_{speaker}_{index}.wav)", wav)
            continue
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        utt = Utterance(wav.stem, str(wav.resolve()), audio_duration(wav), DIGITS[digit], speaker)
        out.append((utt, index))
    if not out:
        raise UserError(f"no FSDD recordings like 7_jackson_32.wav in {rec}")
    return out


def prepare_fsdd(
    corpus_dir: str | Path,
    out_dir: str | Path,
    split: str = "official",
    holdout_speaker: str | None = None,
    test_indices: int = 5,
    with_dev: bool = False,
) -> dict[str, Path]:
    """Write FSDD manifests; returns split name -> manifest path.

    Args:
        corpus_dir (path): the folder holding ``recordings/`` (or ``recordings`` itself).
        out_dir (path): where the manifests go.
        split (str): ``"official"`` (default), ``"speaker"`` (needs ``holdout_speaker``) or ``"loso"``.
        holdout_speaker (str, optional): test speaker; implies ``split="speaker"`` (default None).
        test_indices (int): the official split's first N take indices go to test (default 5).
        with_dev (bool): speaker and loso splits: also write each fold's ``dev`` (the training
            speakers' takes below ``test_indices``) and ``train<test_indices>`` (their other
            takes) (default False).

    Example:
        >>> prepare_fsdd("fsdd", "data/fsdd", holdout_speaker="theo")  # doctest: +SKIP
        {'train': PosixPath('data/fsdd/fsdd_train.jsonl'), 'test': PosixPath('data/fsdd/fsdd_test.jsonl')}
    """
    corpus = require_dir(corpus_dir, "FSDD corpus folder")
    if holdout_speaker is not None:
        split = "speaker"
    if split not in SPLITS:
        raise UserError(f"unknown FSDD split '{split}': choose from {', '.join(SPLITS)}")
    if split == "speaker" and holdout_speaker is None:
        raise UserError("FSDD split 'speaker' needs holdout_speaker")
    if with_dev and split == "official":
        raise UserError("FSDD dev sets are for the speaker and loso splits (the official split's "
                        "test takes are the dev takes)")
    params = {"corpus_dir": str(corpus.resolve()), "split": split, "holdout_speaker": holdout_speaker,
              "test_indices": test_indices, "with_dev": with_dev}
    done = already_prepared(out_dir, "fsdd", params)
    if done:
        return done
    items = _recordings(corpus)
    speakers = sorted({u.speaker for u, _ in items})
    if holdout_speaker is not None and holdout_speaker not in speakers:
        raise UserError(f"FSDD speaker '{holdout_speaker}' not in {corpus}: speakers are {', '.join(speakers)}")
    if split == "official":
        splits = {"train": [u for u, i in items if i >= test_indices],
                  "test": [u for u, i in items if i < test_indices]}
    elif split == "speaker":
        splits = _fold(items, holdout_speaker, "", test_indices if with_dev else None)
    else:
        splits = {}
        for spk in speakers:
            splits.update(_fold(items, spk, f"loso_{spk}_", test_indices if with_dev else None))
    return write_splits(out_dir, "fsdd", splits, params)


def _fold(items: list[tuple[Utterance, int]], speaker: str, prefix: str,
          dev_takes: int | None) -> dict[str, list[Utterance]]:
    """``speaker`` -> test, the others -> train; with ``dev_takes``, the others' takes below it
    also -> dev and the rest -> train<dev_takes>."""
    train = [(u, i) for u, i in items if u.speaker != speaker]
    fold = {f"{prefix}train": [u for u, _ in train],
            f"{prefix}test": [u for u, _ in items if u.speaker == speaker]}
    if dev_takes is not None:
        fold[f"{prefix}train{dev_takes}"] = [u for u, i in train if i >= dev_takes]
        fold[f"{prefix}dev"] = [u for u, i in train if i < dev_takes]
    return fold
