"""Miniature fake corpora in each corpus's exact on-disk layout, with synthetic audio.

Two layers: ``write_<corpus>(dir, ...)`` lays out files from audio arrays the caller gives (the
tests use them with silence and hand-picked lengths), and ``make_fake_<corpus>(dir)`` fills
those layouts with a few utterances of synthetic "speech" (``synth``: one short tone per
character, silence between words) for the recipes' ``--smoke`` runs. Each ``make_fake_*``
returns the path a recipe passes to ``asr prepare <corpus> --corpus``.

Command line (used by ``recipes/*/run.sh --smoke``; prints that path):
    python -m data_prep.fake librispeech exp/smoke/fake_corpus
"""

from __future__ import annotations

import argparse
import sys
import zlib
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import soundfile as sf

from data_prep.timit import CORE_TEST_SPEAKERS, DEV_SPEAKERS, PHONE_MAP

CHAR_S, GAP_S, WORD_GAP_S, EDGE_S = 0.05, 0.01, 0.08, 0.05


def synth(text: str, sr: int, seed: int = 0) -> np.ndarray:
    """Render ``text`` as tones: each character a 50 ms tone whose pitch depends on the
    character, 10 ms gaps, 80 ms between words, a little noise; float32 ``(T,)``, peak ~0.5."""
    rng = np.random.default_rng(seed)
    top = 0.42 * sr  # stay below Nyquist
    n = int(CHAR_S * sr)
    t = np.arange(n) / sr
    fade = np.minimum(1.0, np.minimum(np.arange(n), n - 1 - np.arange(n)) / (0.005 * sr))
    parts = [np.zeros(int(EDGE_S * sr))]
    for wi, word in enumerate(text.split()):
        if wi:
            parts.append(np.zeros(int(WORD_GAP_S * sr)))
        for ci, ch in enumerate(word):
            if ci:
                parts.append(np.zeros(int(GAP_S * sr)))
            freq = 150.0 + (zlib.crc32(ch.encode()) % 64) / 64 * (top - 150.0)
            parts.append(0.5 * fade * np.sin(2 * np.pi * freq * t))
    parts.append(np.zeros(int(EDGE_S * sr)))
    y = np.concatenate(parts)
    return (y + 0.003 * rng.standard_normal(len(y))).astype(np.float32)


def _write(path: Path, audio: np.ndarray, sr: int, **kw) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), audio, sr, **kw)


# -- layouts -------------------------------------------------------------------------------------
def write_yesno(dir: str | Path, files: Mapping[str, np.ndarray], sr: int = 8000) -> Path:
    """``<dir>/waves_yesno/<name>.wav`` per entry (name like ``0_1_0_0_1_0_1_1``); returns
    the ``waves_yesno`` folder."""
    d = Path(dir) / "waves_yesno"
    d.mkdir(parents=True, exist_ok=True)
    for name, audio in files.items():
        _write(d / f"{name}.wav", audio, sr)
    return d


def write_fsdd(dir: str | Path, files: Mapping[tuple[int, str, int], np.ndarray], sr: int = 8000) -> Path:
    """``<dir>/recordings/{digit}_{speaker}_{index}.wav`` per ``(digit, speaker, index)``;
    returns ``dir``."""
    rec = Path(dir) / "recordings"
    rec.mkdir(parents=True, exist_ok=True)
    for (digit, spk, index), audio in files.items():
        _write(rec / f"{digit}_{spk}_{index}.wav", audio, sr)
    return Path(dir)


def write_librispeech(dir: str | Path,
                      tree: Mapping[str, Mapping[tuple[str, str], Sequence[tuple[str, str, np.ndarray]]]],
                      sr: int = 16000) -> Path:
    """``<dir>/LibriSpeech/<subset>/<spk>/<chapter>/`` with FLAC files and ``.trans.txt``.

    ``tree``: subset -> {(speaker, chapter): [(utt number like "0001", TEXT, audio)]}; returns
    ``dir``."""
    root = Path(dir) / "LibriSpeech"
    for subset, chapters in tree.items():
        for (spk, ch), utts in chapters.items():
            d = root / subset / spk / ch
            d.mkdir(parents=True, exist_ok=True)
            lines = []
            for utt, text, audio in utts:
                _write(d / f"{spk}-{ch}-{utt}.flac", audio, sr)
                lines.append(f"{spk}-{ch}-{utt} {text}\n")
            (d / f"{spk}-{ch}.trans.txt").write_text("".join(lines), encoding="utf-8")
    (root / "README.TXT").write_text("LibriSpeech (fake)\n")
    return Path(dir)


def write_timit(root: str | Path,
                layout: Mapping[str, Mapping[str, Mapping[str, Sequence[tuple[str, Sequence[str], str, np.ndarray]]]]],
                upper: bool = True, sr: int = 16000) -> Path:
    """``<root>/{TRAIN,TEST}/<DR>/<SPK>/<SENT>.{WAV,PHN,TXT,WRD}`` (NIST SPHERE audio).

    ``layout``: part -> region -> speaker -> [(sentence, 61-set phones, words, audio)]; phone
    boundaries are spread evenly over the audio. ``upper`` picks the name case. Returns ``root``."""
    case = str.upper if upper else str.lower
    for part, regions in layout.items():
        for dr, speakers in regions.items():
            for spk, sents in speakers.items():
                d = Path(root) / case(part) / case(dr) / case(spk)
                d.mkdir(parents=True, exist_ok=True)
                for sent, phones, words, audio in sents:
                    n = len(audio)
                    _write(d / (case(sent) + case(".wav")), audio, sr, format="NIST", subtype="PCM_16")
                    step = n // len(phones)
                    phn = "".join(f"{k * step} {(k + 1) * step} {p}\n" for k, p in enumerate(phones))
                    (d / (case(sent) + case(".phn"))).write_text(phn)
                    (d / (case(sent) + case(".txt"))).write_text(f"0 {n} {words}\n")
                    (d / (case(sent) + case(".wrd"))).write_text(
                        "".join(f"0 {n} {w}\n" for w in words.lower().strip(".").split()))
    return Path(root)


CV_HEADER = ("client_id\tpath\tsentence_id\tsentence\tsentence_domain\tup_votes\tdown_votes\tage\t"
             "gender\taccents\tvariant\tlocale\tsegment\n")


def write_commonvoice(lang_dir: str | Path,
                      rows: Mapping[str, Sequence[tuple[str, str, str, np.ndarray]]],
                      sr: int = 48000) -> Path:
    """``<lang_dir>/{<split>.tsv, clips/*.mp3}``; rows: split -> [(client_id, clip, sentence,
    audio)]. Returns ``lang_dir``."""
    lang = Path(lang_dir)
    (lang / "clips").mkdir(parents=True, exist_ok=True)
    code = lang.name
    for split, items in rows.items():
        lines = [CV_HEADER]
        for client, clip, sentence, audio in items:
            _write(lang / "clips" / clip, audio, sr, format="MP3")
            lines.append(f"{client}\t{clip}\tsid\t{sentence}\t\t2\t0\t\t\t\t\t{code}\t\n")
        (lang / f"{split}.tsv").write_text("".join(lines), encoding="utf-8")
    return lang


def write_tedlium(dir: str | Path, talks: Mapping[str, Mapping[str, tuple[np.ndarray, Sequence[str]]]],
                  sr: int = 16000) -> Path:
    """``<dir>/TEDLIUM_release-3/legacy/<split>/{sph/<talk>.sph, stm/<talk>.stm}``; talks:
    split -> {talk: (whole-talk audio, STM lines)}. Returns the ``TEDLIUM_release-3`` folder."""
    top = Path(dir) / "TEDLIUM_release-3"
    for split, items in talks.items():
        (top / "legacy" / split / "sph").mkdir(parents=True, exist_ok=True)
        (top / "legacy" / split / "stm").mkdir(parents=True, exist_ok=True)
        for talk, (audio, lines) in items.items():
            _write(top / "legacy" / split / "sph" / f"{talk}.sph", audio, sr, format="NIST", subtype="PCM_16")
            (top / "legacy" / split / "stm" / f"{talk}.stm").write_text("\n".join(lines) + "\n")
    return top


# -- fake corpora --------------------------------------------------------------------------------
WORDS = ("THE", "CAT", "SAT", "ON", "A", "MAT", "DOG", "RAN", "TO", "SEE", "IT", "AND", "WE", "GO")


def _sentence(rng: np.random.Generator, lo: int = 2, hi: int = 5) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(lo, hi + 1))))


def make_fake_yesno(dir: str | Path, n: int = 12, seed: int = 0) -> Path:
    """``n`` files of eight YES/NO words each (names from ``seed``); returns ``waves_yesno``."""
    rng = np.random.default_rng(seed)
    files = {}
    while len(files) < n:
        bits = rng.integers(0, 2, 8)
        name = "_".join(str(b) for b in bits)
        files[name] = synth(" ".join("YES" if b else "NO" for b in bits), 8000, len(files))
    return write_yesno(dir, files)


FSDD_DIGITS = ("ZERO", "ONE", "TWO", "THREE", "FOUR", "FIVE", "SIX", "SEVEN", "EIGHT", "NINE")


def make_fake_fsdd(dir: str | Path, speakers: Sequence[str] = ("jackson", "theo"),
                   digits: Sequence[int] = (0, 1, 7), takes: int = 6) -> Path:
    """``takes`` recordings per digit and speaker (take 0-4 are the official test part)."""
    files = {(d, s, i): synth(FSDD_DIGITS[d], 8000, 100 * d + i)
             for d in digits for s in speakers for i in range(takes)}
    return write_fsdd(dir, files)


LIBRI_SUBSETS = ("train-clean-100", "dev-clean", "test-clean", "test-other")


def make_fake_librispeech(dir: str | Path, subsets: Sequence[str] = LIBRI_SUBSETS,
                          utts_per_chapter: int = 4) -> Path:
    """Two speakers with one chapter each per subset (ids as real LibriSpeech); returns ``dir``."""
    rng = np.random.default_rng(0)
    tree = {}
    for k, subset in enumerate(subsets):
        tree[subset] = {}
        for j in range(2):
            spk, ch = str(100 + 10 * k + j), str(2000 + 10 * k + j)
            utts = []
            for u in range(utts_per_chapter):
                text = _sentence(rng)
                utts.append((f"{u:04d}", text, synth(text, 16000, u)))
            tree[subset][(spk, ch)] = utts
    return write_librispeech(dir, tree)


_PHONES61 = sorted(p for p in PHONE_MAP if p not in ("h#", "pau", "epi"))


def make_fake_timit(dir: str | Path, sentences: int = 3) -> Path:
    """TRAIN: 3 speakers; TEST: 2 core-test and 1 dev speaker; SA sentences included (prepare
    drops them). Phones are drawn from the 61-phone set; returns the ``TIMIT`` folder."""
    rng = np.random.default_rng(0)
    core, dev = CORE_TEST_SPEAKERS, DEV_SPEAKERS
    speakers = {"TRAIN": {"DR1": ["FCJF0", "MDPK0"], "DR2": ["MKLS0"]},
                "TEST": {"DR1": [core[0].upper(), core[2].upper()], "DR2": [dev[0].upper()]}}
    layout: dict = {}
    for part, regions in speakers.items():
        for dr, spks in regions.items():
            for spk in spks:
                sents = []
                for i, sent in enumerate(["SA1"] + [f"SI{100 + 10 * i}" for i in range(sentences)]):
                    phones = ["h#"] + list(rng.choice(_PHONES61, size=int(rng.integers(5, 10)))) + ["h#"]
                    audio = synth(" ".join(phones), 16000, i)
                    sents.append((sent, phones, "She had your dark suit.", audio))
                layout.setdefault(part, {}).setdefault(dr, {})[spk] = sents
    return write_timit(Path(dir) / "TIMIT", layout)


def make_fake_commonvoice(dir: str | Path, lang: str = "cy", clips: Mapping[str, int] | None = None) -> Path:
    """``<dir>/<lang>/`` with train/dev/test TSVs (mixed case, punctuation) and 48 kHz MP3 clips;
    returns ``dir`` (pass ``--lang``)."""
    rng = np.random.default_rng(0)
    clips = clips or {"train": 8, "dev": 3, "test": 3}
    rows, n = {}, 0
    for split, count in clips.items():
        rows[split] = []
        for i in range(count):
            words = _sentence(rng).lower().split()
            sentence = " ".join(words).capitalize() + rng.choice([".", "!", "?", ","])
            n += 1
            audio = synth(" ".join(words).upper(), 48000, n)
            rows[split].append((f"client{n % 3}{split}", f"common_voice_{lang}_{n}.mp3", sentence, audio))
    write_commonvoice(Path(dir) / lang, rows)
    return Path(dir)


def make_fake_tedlium(dir: str | Path, segments: int = 4) -> Path:
    """One talk per split, ``segments`` STM lines each plus an ignored segment and an ``<unk>``;
    returns the ``TEDLIUM_release-3`` folder."""
    rng = np.random.default_rng(0)
    talks = {}
    for k, split in enumerate(("train", "dev", "test")):
        talk = f"Speaker{k}_2010X"
        parts, lines, t = [np.zeros(8000, dtype=np.float32)], [], 0.5
        lines.append(f"{talk} 1 {talk} 0.00 0.50 <o,f0,male> ignore_time_segment_in_scoring")
        for s in range(segments * (2 if split == "train" else 1)):
            words = _sentence(rng).lower().split()
            if s == 1:
                words.insert(1, "<unk>")
            audio = synth(" ".join(w for w in words if w != "<unk>").upper(), 16000, s)
            end = t + len(audio) / 16000
            lines.append(f"{talk} 1 {talk} {t:.2f} {end:.2f} <o,f0,male> {' '.join(words)}")
            parts.append(audio)
            t = end
        talks[split] = {talk: (np.concatenate(parts), lines)}
    return write_tedlium(dir, talks)


def make_fake_an4(dir: str | Path, speakers: Sequence[str] = ("fash", "mblb", "fcaw", "mjgk"),
                  utts: int = 5, test: bool = True) -> Path:
    """AN4 in its git-mirror layout (``wav/an4_clstk/<spk>/<id>.wav`` + ``etc/*.transcription``),
    with a test part (two more speakers) when ``test``; returns ``dir``."""
    rng = np.random.default_rng(0)
    root = Path(dir)
    for part, spks, trans in (("an4_clstk", speakers, "an4_train"),
                              ("an4test_clstk", ("fvap", "mmxg") if test else (), "an4_test")):
        lines = []
        for si, spk in enumerate(spks):
            for k in range(utts):
                uid = f"an{100 + 10 * si + k}-{spk}-b"
                text = _sentence(rng)
                _write(root / "wav" / part / spk / f"{uid}.wav", synth(text, 16000, si * 100 + k),
                       16000, subtype="PCM_16")
                lines.append(f"<s> {text} </s> ({uid})\n")
        if spks:
            (root / "etc").mkdir(parents=True, exist_ok=True)
            (root / "etc" / f"{trans}.transcription").write_text("".join(lines))
    return root


MAKERS = {"an4": make_fake_an4, "yesno": make_fake_yesno, "fsdd": make_fake_fsdd, "librispeech": make_fake_librispeech,
          "timit": make_fake_timit, "commonvoice": make_fake_commonvoice, "tedlium": make_fake_tedlium}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m data_prep.fake",
                                description="write a miniature fake corpus; print its path")
    p.add_argument("corpus", choices=sorted(MAKERS))
    p.add_argument("dir", type=Path)
    a = p.parse_args(argv)
    print(MAKERS[a.corpus](a.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
