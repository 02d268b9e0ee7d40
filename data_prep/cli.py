"""``asr prepare <corpus>``: the thin command line over the data_prep library functions.

Each corpus subcommand takes ``--corpus DIR`` (the corpus folder, or the download folder with
``--download``) and ``--out DIR`` (where manifests go), calls ``download_<corpus>`` if asked and
``prepare_<corpus>``, and prints one line per split. Reruns do nothing once the outputs exist.

Example:
    asr prepare librispeech --corpus downloads --out data/libri --download --subsets dev-clean-2 train-clean-5
    asr prepare fsdd --corpus /data/fsdd --out data/fsdd --holdout-speaker theo
    asr prepare fsdd --corpus /data/fsdd --out data/fsdd --split loso --with-dev
    asr prepare export-kaldi --manifest data/fsdd/fsdd_test.jsonl --out data/kaldi/test
"""

from __future__ import annotations

import argparse
from pathlib import Path


def _corpus_args(p: argparse.ArgumentParser, download: bool, corpus_help: str = "corpus folder") -> None:
    p.add_argument("--corpus", type=Path, required=True,
                   help=corpus_help + (" (with --download: where to download and unpack it)" if download else ""))
    p.add_argument("--out", type=Path, required=True, help="output folder for the JSONL manifests")
    if download:
        p.add_argument("--download", action="store_true", help="download and unpack the corpus first")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register ``prepare`` and its per-corpus subcommands on the top-level ``asr`` subparsers."""
    p = subparsers.add_parser("prepare", help="download a corpus and write its manifests",
                              description="Write JSONL manifests (one per split) for a corpus.")
    p.set_defaults(func=run)
    sub = p.add_subparsers(dest="corpus_name", required=True, metavar="CORPUS")

    s = sub.add_parser("yesno", help="yesno (OpenSLR 1), train/test halves")
    _corpus_args(s, download=True)

    s = sub.add_parser("fsdd", help="Free Spoken Digit Dataset")
    _corpus_args(s, download=True)
    s.add_argument("--split", choices=("official", "loso"), default="official",
                   help="official (take index 0-4 = test) or every leave-one-speaker-out fold")
    s.add_argument("--holdout-speaker", help="one speaker as test, the rest as train")
    s.add_argument("--with-dev", action="store_true",
                   help="with --split loso or --holdout-speaker: each fold's training speakers' "
                   "takes 0-4 also become its dev set (<fold>_dev), takes 5-49 <fold>_train5")

    s = sub.add_parser("librispeech", help="LibriSpeech (OpenSLR 12) / Mini LibriSpeech (OpenSLR 31)")
    _corpus_args(s, download=True, corpus_help="LibriSpeech folder or its parent")
    s.add_argument("--subsets", nargs="+", help="subsets (default: all present; with --download: "
                   "train-clean-5 dev-clean-2)")
    s.add_argument("--base-url", default=None, help="OpenSLR mirror, e.g. https://us.openslr.org/resources")

    s = sub.add_parser("timit", help="TIMIT (local LDC copy): train / 50-speaker dev / core test")
    _corpus_args(s, download=False, corpus_help="folder holding TRAIN/ and TEST/")
    s.add_argument("--phones", type=int, choices=(39, 48, 61), default=39, help="phone set (default 39)")

    s = sub.add_parser("commonvoice", help="Common Voice (local download of one language)")
    _corpus_args(s, download=False, corpus_help="language folder with *.tsv and clips/")
    s.add_argument("--lang", help="language subfolder of --corpus")
    s.add_argument("--splits", nargs="+", default=["train", "dev", "test"], help="TSV names")

    s = sub.add_parser("tedlium", help="TED-LIUM 3 (OpenSLR 51), legacy train/dev/test")
    _corpus_args(s, download=True, corpus_help="TEDLIUM_release-3 folder or its parent")
    s.add_argument("--splits", nargs="+", default=["train", "dev", "test"])
    s.add_argument("--unk", default=None, help="replace <unk> by this token (default: drop it)")
    s.add_argument("--no-join-suffixes", action="store_true", help="keep \"i 'm\" as two tokens")

    s = sub.add_parser("an4", help="AN4 (CMU census database)")
    _corpus_args(s, download=True, corpus_help="AN4 folder (git-mirror or an4_sphere.tar.gz layout)")
    s.add_argument("--dev-speakers", nargs="+", help="train speakers held out as dev")
    s.add_argument("--source", choices=("auto", "cmu", "github"), default="auto",
                   help="with --download: CMU's an4_sphere.tar.gz, the git mirror's archive, or "
                   "auto (CMU, then the mirror; default)")
    s.add_argument("--url", help="with --download: another address of an AN4 archive")
    s.add_argument("--sha256", help="with --download: the archive's expected SHA-256 (default: "
                   "the one recorded by the first download)")

    s = sub.add_parser("kaldi", help="import a Kaldi data folder (wav.scp, text, utt2spk, segments)")
    _corpus_args(s, download=False, corpus_help="Kaldi data folder")
    s.add_argument("--name", help="manifest name (default: the folder's name)")
    s.add_argument("--audio-root", type=Path, help="base of relative wav.scp paths (default: current folder)")

    s = sub.add_parser("nemo", help="import a NeMo JSONL manifest")
    _corpus_args(s, download=False, corpus_help="NeMo manifest file")
    s.add_argument("--name", help="manifest name (default: the file's stem)")

    s = sub.add_parser("export-kaldi", help="write a manifest as a Kaldi data folder")
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True, help="Kaldi data folder to write")

    s = sub.add_parser("export-nemo", help="write a manifest as a NeMo JSONL manifest")
    s.add_argument("--manifest", type=Path, required=True)
    s.add_argument("--out", type=Path, required=True, help="NeMo manifest file to write")


def _prepare(args: argparse.Namespace) -> dict[str, Path]:
    """Call the library for ``args.corpus_name``; modules are imported only when used."""
    name, corpus, out = args.corpus_name, getattr(args, "corpus", None), args.out
    fetch = getattr(args, "download", False)
    if name == "yesno":
        from data_prep.yesno import download_yesno, prepare_yesno
        return prepare_yesno(download_yesno(corpus) if fetch else corpus, out)
    if name == "fsdd":
        from data_prep.fsdd import download_fsdd, prepare_fsdd
        return prepare_fsdd(download_fsdd(corpus) if fetch else corpus, out, split=args.split,
                            holdout_speaker=args.holdout_speaker, with_dev=args.with_dev)
    if name == "librispeech":
        from data_prep.librispeech import BASE_URL, MINI, download_librispeech, prepare_librispeech
        if fetch:
            download_librispeech(corpus, args.subsets or MINI, args.base_url or BASE_URL)
        return prepare_librispeech(corpus, out, args.subsets or (MINI if fetch else None))
    if name == "timit":
        from data_prep.timit import prepare_timit
        return prepare_timit(corpus, out, phones=args.phones)
    if name == "commonvoice":
        from data_prep.commonvoice import prepare_commonvoice
        return prepare_commonvoice(corpus, out, splits=args.splits, lang=args.lang)
    if name == "tedlium":
        from data_prep.tedlium import download_tedlium, prepare_tedlium
        return prepare_tedlium(download_tedlium(corpus) if fetch else corpus, out, splits=args.splits,
                               unk=args.unk, join_suffixes=not args.no_join_suffixes)
    if name == "an4":
        from data_prep.an4 import download_an4, prepare_an4
        if fetch:
            corpus = download_an4(corpus, source=args.source, url=args.url, sha256=args.sha256)
        return prepare_an4(corpus, out, dev_speakers=args.dev_speakers)
    if name == "kaldi":
        from data_prep.kaldi import prepare_kaldi
        return prepare_kaldi(corpus, out, name=args.name, audio_root=args.audio_root)
    if name == "nemo":
        from data_prep.nemo import prepare_nemo
        return prepare_nemo(corpus, out, name=args.name)
    if name == "export-kaldi":
        from data_prep.kaldi import manifest_to_kaldi
        return {"kaldi": manifest_to_kaldi(args.manifest, out)}
    if name == "export-nemo":
        from data_prep.nemo import manifest_to_nemo
        return {"nemo": manifest_to_nemo(args.manifest, out)}
    raise AssertionError(f"unhandled corpus {name}")


def run(args: argparse.Namespace) -> int:
    """Entry point for ``asr prepare``: prepare, print ``<split>\\t<path>`` lines, return 0.

    UserError propagates to ``asr.cli``, which prints it as one line."""
    for split, path in _prepare(args).items():
        print(f"{split}\t{path}")
    return 0
