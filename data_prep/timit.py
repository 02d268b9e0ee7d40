"""TIMIT (LDC93S1, a local licensed copy): phone-recognition manifests for train / dev / core test.

Layout: ``TIMIT/{TRAIN,TEST}/DR<n>/<spk>/<sent>.{WAV,PHN,TXT,WRD}``; names are upper case on the LDC
disc and lower case in many copies, so every lookup ignores case. WAV files are NIST SPHERE
(16 kHz), read by soundfile. Following the standard recipe (Lee & Hon 1989; Kaldi ``egs/timit/s5``):

- the SA dialect sentences (sa1, sa2) are excluded everywhere;
- ``train``: every TRAIN speaker (462 speakers, 3696 utterances);
- ``dev``: the 50-speaker development set from TEST (400 utterances), ``DEV_SPEAKERS``;
- ``test``: the 24-speaker core test set (192 utterances), ``CORE_TEST_SPEAKERS``;
- text: the PHN phones folded 61 -> 48 -> 39 (``phones=39``, default) or to 48, or kept (``61``);
  the glottal stop q is removed. The word transcript (TXT) goes in the ``words`` field.

Utterance ids are ``<spk>_<sent>`` in lower case (``fdhc0_si1559``), speakers ``<spk>`` (``fdhc0``).
"""

from __future__ import annotations

import logging
from pathlib import Path

from asr.errors import UserError
from asr.manifest import Utterance
from data_prep.common import already_prepared, audio_duration, find_ci, require_dir, write_splits

log = logging.getLogger(__name__)

# 61-phone label -> (48-phone, 39-phone), Kaldi egs/timit/s5/conf/phones.60-48-39.map; q is dropped.
PHONE_MAP: dict[str, tuple[str, str]] = {
    "aa": ("aa", "aa"), "ae": ("ae", "ae"), "ah": ("ah", "ah"), "ao": ("ao", "aa"), "aw": ("aw", "aw"),
    "ax": ("ax", "ah"), "ax-h": ("ax", "ah"), "axr": ("er", "er"), "ay": ("ay", "ay"), "b": ("b", "b"),
    "bcl": ("vcl", "sil"), "ch": ("ch", "ch"), "d": ("d", "d"), "dcl": ("vcl", "sil"), "dh": ("dh", "dh"),
    "dx": ("dx", "dx"), "eh": ("eh", "eh"), "el": ("el", "l"), "em": ("m", "m"), "en": ("en", "n"),
    "eng": ("ng", "ng"), "epi": ("epi", "sil"), "er": ("er", "er"), "ey": ("ey", "ey"), "f": ("f", "f"),
    "g": ("g", "g"), "gcl": ("vcl", "sil"), "h#": ("sil", "sil"), "hh": ("hh", "hh"), "hv": ("hh", "hh"),
    "ih": ("ih", "ih"), "ix": ("ix", "ih"), "iy": ("iy", "iy"), "jh": ("jh", "jh"), "k": ("k", "k"),
    "kcl": ("cl", "sil"), "l": ("l", "l"), "m": ("m", "m"), "n": ("n", "n"), "ng": ("ng", "ng"),
    "nx": ("n", "n"), "ow": ("ow", "ow"), "oy": ("oy", "oy"), "p": ("p", "p"), "pau": ("sil", "sil"),
    "pcl": ("cl", "sil"), "r": ("r", "r"), "s": ("s", "s"), "sh": ("sh", "sh"), "t": ("t", "t"),
    "tcl": ("cl", "sil"), "th": ("th", "th"), "uh": ("uh", "uh"), "uw": ("uw", "uw"), "ux": ("uw", "uw"),
    "v": ("v", "v"), "w": ("w", "w"), "y": ("y", "y"), "z": ("z", "z"), "zh": ("zh", "sh"),
}
DROPPED = ("q",)

# Core test set: 2 male + 1 female speaker from each of the 8 dialect regions (DR1..DR8).
CORE_TEST_SPEAKERS = (
    "mdab0", "mwbt0", "felc0",  # DR1
    "mtas1", "mwew0", "fpas0",  # DR2
    "mjmp0", "mlnt0", "fpkt0",  # DR3
    "mlll0", "mtls0", "fjlm0",  # DR4
    "mbpm0", "mklt0", "fnlp0",  # DR5
    "mcmj0", "mjdh0", "fmgd0",  # DR6
    "mgrt0", "mnjm0", "fdhc0",  # DR7
    "mjln0", "mpam0", "fmld0",  # DR8
)
# Standard 50-speaker dev set (Kaldi egs/timit/s5/conf/dev_spk.list), disjoint from the core test.
DEV_SPEAKERS = (
    "faks0", "fdac1", "fjem0", "mgwt0", "mjar0", "mmdb1", "mmdm2", "mpdf0", "fcmh0", "fkms0",
    "mbdg0", "mbwm0", "mcsh0", "fadg0", "fdms0", "fedw0", "mgjf0", "mglb0", "mrtk0", "mtaa0",
    "mtdt0", "mthc0", "mwjg0", "fnmr0", "frew0", "fsem0", "mbns0", "mmjr0", "mdls0", "mdlf0",
    "mdvc0", "mers0", "fmah0", "fdrw0", "mrcs0", "mrjm4", "fcal1", "mmwh0", "fjsj0", "majc0",
    "mjsw0", "mreb0", "fgjd0", "fjmg0", "mroa0", "mteb0", "mjfc0", "mrjr0", "fmml0", "mrws1",
)
EXPECTED = {"train": 3696, "dev": 400, "test": 192}


def fold_phones(phones: list[str], to: int = 39, where: str = "") -> list[str]:
    """Map 61-set TIMIT phones to the 48 or 39 set (``to=61`` keeps them), dropping q."""
    if to not in (61, 48, 39):
        raise UserError(f"TIMIT phone set must be 61, 48 or 39, got {to}")
    out = []
    for p in phones:
        if p in DROPPED:
            continue
        if p not in PHONE_MAP:
            raise UserError(f"{where}: unknown TIMIT phone '{p}'")
        out.append(p if to == 61 else PHONE_MAP[p][0 if to == 48 else 1])
    return out


def _timit_root(corpus: Path) -> Path:
    """The folder holding TRAIN and TEST (the corpus folder itself, or its TIMIT/ or data/ child)."""
    for cand in (corpus, find_ci(corpus, "TIMIT"), find_ci(corpus, "data")):
        if cand is not None and find_ci(cand, "TRAIN") and find_ci(cand, "TEST"):
            return cand
    raise UserError(f"no TIMIT TRAIN/ and TEST/ folders in {corpus}")


def _speaker_utterances(spk_dir: Path, phones: int) -> list[Utterance]:
    """Every non-SA sentence of one speaker folder."""
    spk = spk_dir.name.lower()
    utts = []
    for wav in sorted(spk_dir.iterdir()):
        # `.WAV` only: some copies add converted `SI1559.WAV.wav` files beside the SPHERE ones.
        if wav.suffix.lower() != ".wav" or "." in wav.stem or wav.stem.lower().startswith("sa"):
            continue
        phn = find_ci(spk_dir, wav.stem + ".PHN")
        if phn is None:
            raise UserError(f"TIMIT phone transcript missing for {wav}")
        rows = [line.split() for line in phn.read_text(encoding="ascii").splitlines() if line.strip()]
        if any(len(r) != 3 for r in rows):
            raise UserError(f"{phn}: expected '<start> <end> <phone>' lines")
        labels = [r[2] for r in rows]
        extra = {}
        txt = find_ci(spk_dir, wav.stem + ".TXT")
        if txt is not None:  # "<start> <end> The sentence."
            extra["words"] = " ".join(txt.read_text(encoding="ascii").split()[2:])
        text = " ".join(fold_phones(labels, phones, str(phn)))
        utt_id = f"{spk}_{wav.stem.lower()}"
        utts.append(Utterance(utt_id, str(wav.resolve()), audio_duration(wav), text, spk, extra))
    return utts


def _part_utterances(part_dir: Path, phones: int, speakers: set[str] | None) -> list[Utterance]:
    utts = []
    for spk_dir in sorted(p for dr in part_dir.iterdir() if dr.is_dir() for p in dr.iterdir() if p.is_dir()):
        if speakers is None or spk_dir.name.lower() in speakers:
            utts.extend(_speaker_utterances(spk_dir, phones))
    return sorted(utts, key=lambda u: u.id)


def prepare_timit(corpus_dir: str | Path, out_dir: str | Path, phones: int = 39) -> dict[str, Path]:
    """Write ``timit_{train,dev,test}.jsonl``; returns {"train", "dev", "test"} -> path.

    Args:
        corpus_dir (path): the folder holding TRAIN/ and TEST/ (or its parent).
        out_dir (path): where the manifests go.
        phones (int): target phone set, 39 (default), 48 or 61.
    """
    root = _timit_root(require_dir(corpus_dir, "TIMIT corpus folder"))
    if phones not in (61, 48, 39):
        raise UserError(f"TIMIT phone set must be 61, 48 or 39, got {phones}")
    params = {"corpus_dir": str(root.resolve()), "phones": phones}
    done = already_prepared(out_dir, "timit", params)
    if done:
        return done
    train_dir, test_dir = find_ci(root, "TRAIN"), find_ci(root, "TEST")
    splits = {
        "train": _part_utterances(train_dir, phones, None),
        "dev": _part_utterances(test_dir, phones, set(DEV_SPEAKERS)),
        "test": _part_utterances(test_dir, phones, set(CORE_TEST_SPEAKERS)),
    }
    for name, utts in splits.items():
        if len(utts) != EXPECTED[name]:
            log.warning("timit: %s has %d utterances, the standard set has %d", name, len(utts), EXPECTED[name])
    return write_splits(out_dir, "timit", splits, params)
