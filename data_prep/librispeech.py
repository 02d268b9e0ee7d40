"""LibriSpeech (OpenSLR 12) and Mini LibriSpeech (OpenSLR 31): download, and one manifest per subset.

Layout after unpacking any subset archive: ``LibriSpeech/<subset>/<spk>/<chapter>/`` holding
``<spk>-<chapter>.trans.txt`` (lines ``<spk>-<chapter>-<utt> TEXT IN UPPER CASE``) and
``<spk>-<chapter>-<utt>.flac`` (16 kHz). Utterance id is the file stem, speaker the reader id.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from asr.errors import UserError
from asr.manifest import Utterance
from data_prep.common import already_prepared, audio_duration, require_dir, write_splits
from data_prep.download import download_and_extract

log = logging.getLogger(__name__)

BASE_URL = "https://www.openslr.org/resources"
# subset -> (OpenSLR resource number, algorithm, digest). SHA-256 of the OpenSLR 12 archives from
# torchaudio datasets/librispeech.py (_CHECKSUMS); MD5 of the OpenSLR 31 archives as published in
# OpenSLR's md5sum.txt for resource 31 (also pinned by PaddleSpeech's mini_librispeech.py).
SUBSETS: dict[str, tuple[int, str, str]] = {
    "dev-clean": (12, "sha256", "76f87d090650617fca0cac8f88b9416e0ebf80350acb97b343a85fa903728ab3"),
    "dev-other": (12, "sha256", "12661c48e8c3fe1de2c1caa4c3e135193bfb1811584f11f569dd12645aa84365"),
    "test-clean": (12, "sha256", "39fde525e59672dc6d1551919b1478f724438a95aa55f874b576be21967e6c23"),
    "test-other": (12, "sha256", "d09c181bba5cf717b3dee7d4d592af11a3ee3a09e08ae025c5506f6ebe961c29"),
    "train-clean-100": (12, "sha256", "d4ddd1d5a6ab303066f14971d768ee43278a5f2a0aa43dc716b0e64ecbbbf6e2"),
    "train-clean-360": (12, "sha256", "146a56496217e96c14334a160df97fffedd6e0a04e66b9c5af0d40be3c792ecf"),
    "train-other-500": (12, "sha256", "ddb22f27f96ec163645d53215559df6aa36515f26e01dd70798188350adcb6d2"),
    "dev-clean-2": (31, "md5", "6d7ab67ac6a1d2c993d050e16d61080d"),
    "train-clean-5": (31, "md5", "5df7d4e78065366204ca6845bb08f490"),
}
MINI = ("train-clean-5", "dev-clean-2")


def _check_subsets(subsets: Sequence[str]) -> None:
    unknown = [s for s in subsets if s not in SUBSETS]
    if unknown:
        raise UserError(f"unknown LibriSpeech subset(s) {', '.join(unknown)}: choose from {', '.join(SUBSETS)}")


def download_librispeech(
    target_dir: str | Path, subsets: Sequence[str] = MINI, base_url: str = BASE_URL
) -> Path:
    """Download and unpack ``subsets`` into ``target_dir``; returns ``target_dir/LibriSpeech``.

    Args:
        target_dir (path): download folder; archives unpack into ``target_dir/LibriSpeech/<subset>``.
        subsets (list[str]): any of ``SUBSETS`` (default: Mini LibriSpeech, ``train-clean-5``,
            ``dev-clean-2``).
        base_url (str): OpenSLR mirror, e.g. ``https://us.openslr.org/resources`` (default www).
    """
    _check_subsets(subsets)
    for subset in subsets:
        resource, algo, digest = SUBSETS[subset]
        url = f"{base_url.rstrip('/')}/{resource}/{subset}.tar.gz"
        download_and_extract(url, target_dir, **{algo: digest})
    return Path(target_dir) / "LibriSpeech"


def _root(corpus: Path) -> Path:
    """The folder whose children are the subsets (``LibriSpeech/`` itself or its parent)."""
    return corpus / "LibriSpeech" if (corpus / "LibriSpeech").is_dir() else corpus


def _subset_utterances(subset_dir: Path) -> list[Utterance]:
    utts = []
    trans_files = sorted(subset_dir.glob("*/*/*.trans.txt"))
    if not trans_files:
        raise UserError(f"no <spk>/<chapter>/*.trans.txt transcripts under {subset_dir}")
    for trans in tqdm(trans_files, desc=subset_dir.name, unit="chapter", disable=None, leave=False):
        for n, line in enumerate(trans.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            utt_id, _, text = line.strip().partition(" ")
            flac = trans.parent / f"{utt_id}.flac"
            if not flac.is_file():
                raise UserError(f"{trans}:{n}: audio {flac.name} is missing")
            speaker = utt_id.split("-")[0]
            utts.append(Utterance(utt_id, str(flac.resolve()), audio_duration(flac), text.strip(), speaker))
    return sorted(utts, key=lambda u: u.id)


def prepare_librispeech(
    corpus_dir: str | Path, out_dir: str | Path, subsets: Sequence[str] | None = None
) -> dict[str, Path]:
    """Write ``librispeech_<subset>.jsonl`` per subset; returns subset -> manifest path.

    Args:
        corpus_dir (path): the ``LibriSpeech`` folder or the folder holding it.
        out_dir (path): where the manifests go.
        subsets (list[str], optional): which subsets (default None: every known subset present).

    Example:
        >>> prepare_librispeech("downloads", "data/libri", ["dev-clean-2"])  # doctest: +SKIP
        {'dev-clean-2': PosixPath('data/libri/librispeech_dev-clean-2.jsonl')}
    """
    root = _root(require_dir(corpus_dir, "LibriSpeech corpus folder"))
    if subsets is None:
        subsets = [s for s in SUBSETS if (root / s).is_dir()]
        if not subsets:
            raise UserError(f"no LibriSpeech subset folders ({', '.join(SUBSETS)}) in {root}")
    _check_subsets(subsets)
    missing = [s for s in subsets if not (root / s).is_dir()]
    if missing:
        raise UserError(f"LibriSpeech subset folder(s) missing in {root}: {', '.join(missing)}")
    params = {"corpus_dir": str(root.resolve()), "subsets": list(subsets)}
    done = already_prepared(out_dir, "librispeech", params)
    if done:
        return done
    splits = {s: _subset_utterances(root / s) for s in subsets}
    return write_splits(out_dir, "librispeech", splits, params)
