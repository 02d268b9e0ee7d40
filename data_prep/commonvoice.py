"""Mozilla Common Voice (a local download of one language): manifests from the split TSVs.

Common Voice needs an agreement per download, so there is no ``download_commonvoice``. Layout of
the unpacked language folder: ``<lang>/{train,dev,test,validated,...}.tsv`` and ``<lang>/clips/*.mp3``.
The TSVs are tab-separated with a header; the columns used are ``client_id`` (-> speaker),
``path`` (the clip's file name) and ``sentence`` (-> text, kept as written: mixed case with
punctuation). Utterance id is the clip name without ``.mp3``.
"""

from __future__ import annotations

import csv
import logging
import sys
from pathlib import Path
from typing import Sequence

from tqdm import tqdm

from asr.errors import UserError
from asr.manifest import Utterance
from data_prep.common import already_prepared, audio_duration, require_dir, write_splits

log = logging.getLogger(__name__)

SPLITS = ("train", "dev", "test")
COLUMNS = ("client_id", "path", "sentence")


def _read_tsv(tsv: Path, clips: Path) -> list[Utterance]:
    # Sentences contain quotes, so no CSV quoting; fields themselves never hold tabs or newlines.
    csv.field_size_limit(sys.maxsize)
    with open(tsv, encoding="utf-8", newline="") as f:
        reader = csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise UserError(f"{tsv}: missing column(s) {', '.join(missing)}")
        rows = list(reader)
    utts = []
    for n, row in enumerate(tqdm(rows, desc=tsv.stem, unit="clip", disable=None, leave=False), 2):
        audio = clips / row["path"]
        if not audio.is_file():
            raise UserError(f"{tsv}:{n}: clip {audio} is missing")
        utt_id = Path(row["path"]).stem
        text = " ".join((row["sentence"] or "").split())
        utts.append(Utterance(utt_id, str(audio.resolve()), audio_duration(audio), text, row["client_id"]))
    return utts


def prepare_commonvoice(
    corpus_dir: str | Path, out_dir: str | Path, splits: Sequence[str] = SPLITS, lang: str | None = None
) -> dict[str, Path]:
    """Write ``commonvoice_<split>.jsonl`` per split TSV; returns split -> manifest path.

    Args:
        corpus_dir (path): the language folder holding the TSVs and ``clips/`` (or its parent
            when ``lang`` is given, e.g. ``cv-corpus-17.0-2024-03-15`` with ``lang="cy"``).
        out_dir (path): where the manifests go.
        splits (list[str]): TSV names without ``.tsv`` (default ``train``, ``dev``, ``test``).
        lang (str, optional): language subfolder of ``corpus_dir`` (default None: corpus_dir is it).
    """
    corpus = require_dir(corpus_dir, "Common Voice folder")
    if lang is not None:
        corpus = require_dir(corpus / lang, f"Common Voice language '{lang}' folder")
    clips = require_dir(corpus / "clips", "Common Voice clips folder")
    tsvs = {s: corpus / f"{s}.tsv" for s in splits}
    missing = [str(p) for p in tsvs.values() if not p.is_file()]
    if missing:
        raise UserError(f"Common Voice split file(s) not found: {', '.join(missing)}")
    params = {"corpus_dir": str(corpus.resolve()), "splits": list(splits)}
    done = already_prepared(out_dir, "commonvoice", params)
    if done:
        return done
    return write_splits(out_dir, "commonvoice", {s: _read_tsv(p, clips) for s, p in tsvs.items()}, params)
