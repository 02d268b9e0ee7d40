"""data_prep.an4 on fake AN4 trees in both public layouts, and on the real corpus."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.errors import UserError
from asr.manifest import read_manifest
from data_prep.an4 import default_dev_speakers, prepare_an4, read_transcription

TRAIN_SPEAKERS = ["fash", "fbbh", "fclc", "fjam", "mblb", "mdcs2", "mgah", "mkem", "mnjl", "mskh"]
TEST_SPEAKERS = ["fcaw", "mmxg"]
TEXTS = ["YES", "GO", "RUBOUT G M E F", "ENTER SIX TWO", "NO"]
REAL_AN4 = Path(__file__).resolve().parents[2] / "shared/data/an4"


def _write_part(root: Path, wav_dir: str, trans: str, speakers: list[str], prefix: str,
                ext: str, start: int) -> dict[str, tuple[str, str, float]]:
    """Write 2 utterances per speaker; return id -> (text, speaker, duration)."""
    expected, lines, k = {}, [], start
    for spk in speakers:
        for j in range(2):
            uid = f"{prefix}{k}-{spk}-b"
            text = TEXTS[k % len(TEXTS)]
            n = 4000 + 160 * k  # distinct durations
            path = root / "wav" / wav_dir / spk / f"{uid}{ext}"
            path.parent.mkdir(parents=True, exist_ok=True)
            y = (0.01 * np.random.default_rng(k).standard_normal(n)).astype(np.float32)
            if ext == ".sph":
                sf.write(str(path), y, 16000, format="NIST", subtype="PCM_16")
            else:
                sf.write(str(path), y, 16000, subtype="PCM_16")
            # AN4 markup: <s> ... </s>, sometimes <sil>, irregular spacing
            words = text.replace(" ", "  <sil> ", 1) if j else text
            lines.append(f"<s> {words} </s> ({uid})")
            expected[uid] = (text, spk, n / 16000)
            k += 1
    (root / "etc").mkdir(parents=True, exist_ok=True)
    (root / "etc" / trans).write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    return expected


def make_fake_an4(base: Path, layout: str, with_test: bool):
    """layout "git": <base>/wav/an4_clstk/<spk>/<utt>.wav + <base>/etc/...;
    layout "sphere": <base>/an4/wav/... with .sph (NIST SPHERE) files, as in an4_sphere.tar.gz."""
    root = base if layout == "git" else base / "an4"
    ext = ".wav" if layout == "git" else ".sph"
    train = _write_part(root, "an4_clstk", "an4_train.transcription", TRAIN_SPEAKERS, "an", ext, 0)
    test = (_write_part(root, "an4test_clstk", "an4_test.transcription", TEST_SPEAKERS, "cen",
                        ext, 100) if with_test else {})
    if layout == "sphere":  # the tarball has more alongside; it must be ignored
        (root / "wav" / "an4_clstk" / "fash" / "notes.txt").write_text("x")
    return root, train, test


def _check(manifest: Path, expected: dict, root: Path):
    utts = read_manifest(manifest)
    assert sorted(u.id for u in utts) == sorted(expected)
    for u in utts:
        text, spk, dur = expected[u.id]
        assert (u.text, u.speaker) == (text, spk)
        assert u.duration == pytest.approx(dur, abs=1e-4)
        assert os.path.isabs(u.audio_path) and Path(u.audio_path).is_file()
        assert Path(u.audio_path).resolve().is_relative_to(root.resolve())
        assert Path(u.audio_path).stem == u.id
    return utts


@pytest.mark.parametrize("layout, with_test", [("git", False), ("git", True), ("sphere", True),
                                               ("sphere", False)])
def test_prepare_an4_layouts(tmp_path, layout, with_test):
    root, train, test = make_fake_an4(tmp_path / "corpus", layout, with_test)
    out = tmp_path / "manifests"
    outs = prepare_an4(tmp_path / "corpus", out, dev_speakers=["fash", "mgah"])
    assert set(outs) == ({"train", "dev", "test"} if with_test else {"train", "dev"})
    assert (out / "an4_test.jsonl").is_file() == with_test
    dev_ids = {u for u, (_, spk, _) in train.items() if spk in ("fash", "mgah")}
    tr = _check(outs["train"], {k: v for k, v in train.items() if k not in dev_ids}, root)
    dv = _check(outs["dev"], {k: train[k] for k in dev_ids}, root)
    assert {u.speaker for u in dv} == {"fash", "mgah"}
    assert not {u.speaker for u in tr} & {u.speaker for u in dv}
    if with_test:
        _check(outs["test"], test, root)
    if layout == "sphere":
        assert all(u.audio_path.endswith(".sph") and sf.info(u.audio_path).format == "NIST"
                   for u in tr + dv)


def test_default_dev_split_is_speaker_disjoint(tmp_path):
    root, train, _ = make_fake_an4(tmp_path / "c", "git", False)
    outs = prepare_an4(tmp_path / "c", tmp_path / "m")
    tr, dv = read_manifest(outs["train"]), read_manifest(outs["dev"])
    dev_spk = {u.speaker for u in dv}
    assert dev_spk == set(default_dev_speakers(TRAIN_SPEAKERS)) and len(dev_spk) == 8
    assert not dev_spk & {u.speaker for u in tr}
    assert len(tr) + len(dv) == len(train)
    assert default_dev_speakers(TRAIN_SPEAKERS) == default_dev_speakers(TRAIN_SPEAKERS[::-1])


def test_rerun_does_nothing_and_new_options_redo(tmp_path):
    make_fake_an4(tmp_path / "c", "sphere", True)
    out = tmp_path / "m"
    outs = prepare_an4(tmp_path / "c", out, dev_speakers=["fash"])
    files = list(outs.values()) + [p for p in out.iterdir() if p.name.startswith(".")]
    old = 1_000_000_000 * 10**9  # 2001: any rewrite would change it
    for p in files:
        os.utime(p, ns=(old, old))
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files}
    again = prepare_an4(tmp_path / "c", out, dev_speakers=["fash"])
    assert again == outs
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in files} == before
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["an4_dev.jsonl", "an4_test.jsonl", "an4_train.jsonl"]  # no stray temporary files
    prepare_an4(tmp_path / "c", out, dev_speakers=["mgah"])  # other options: redone
    assert {u.speaker for u in read_manifest(outs["dev"])} == {"mgah"}


def test_errors(tmp_path):
    with pytest.raises(UserError, match="not an AN4 corpus"):
        prepare_an4(tmp_path, tmp_path / "m")
    root, train, _ = make_fake_an4(tmp_path / "c", "git", False)
    with pytest.raises(UserError, match="nobody"):
        prepare_an4(tmp_path / "c", tmp_path / "m", dev_speakers=["nobody"])
    next(iter((root / "wav" / "an4_clstk" / "fbbh").iterdir())).unlink()
    with pytest.raises(UserError, match="no audio file"):
        prepare_an4(tmp_path / "c", tmp_path / "m", dev_speakers=["fash"])
    bad = tmp_path / "bad.transcription"
    bad.write_text("<s> YES </s> (an1-fash-b)\nYES WITHOUT AN ID\n")
    with pytest.raises(UserError, match="bad.transcription:2"):
        read_transcription(bad)


def test_small_corpus_with_default_dev_split_does_not_crash(tmp_path):
    """A partial AN4 copy (fewer than 8 speakers) without --dev-speakers: a valid split that
    leaves one speaker for training (not a ValueError from random.sample); a copy with a single
    speaker is a one-line UserError."""
    root = tmp_path / "c"
    speakers = ["fash", "mgah", "mkem"]
    _write_part(root, "an4_clstk", "an4_train.transcription", speakers, "an", ".wav", 0)
    outs = prepare_an4(root, tmp_path / "m")
    tr, dv = read_manifest(outs["train"]), read_manifest(outs["dev"])
    train_spk, dev_spk = {u.speaker for u in tr}, {u.speaker for u in dv}
    assert len(train_spk) == 1 and len(dev_spk) == 2 and train_spk | dev_spk == set(speakers)
    assert sorted(dev_spk) == default_dev_speakers(speakers)
    assert len(tr) + len(dv) == 2 * len(speakers)
    one = tmp_path / "one"
    _write_part(one, "an4_clstk", "an4_train.transcription", ["fash"], "an", ".wav", 0)
    with pytest.raises(UserError, match="needs at least 2 speakers"):
        prepare_an4(one, tmp_path / "m1")


def test_real_an4_corpus(tmp_path):
    dev_speakers = (REAL_AN4 / "splits" / "dev_speakers.txt").read_text().split()
    outs = prepare_an4(REAL_AN4, tmp_path, dev_speakers=dev_speakers)
    assert set(outs) == {"train", "dev"}  # this copy has no test part
    tr, dv = read_manifest(outs["train"]), read_manifest(outs["dev"])
    assert (len(tr), len(dv)) == (851, 97)
    assert {u.speaker for u in dv} == set(dev_speakers)
    assert not {u.speaker for u in tr} & set(dev_speakers)
    split_ids = {s: set((REAL_AN4 / "splits" / f"{s}.lst").read_text().split())
                 for s in ("train", "dev")}
    assert {u.id for u in tr} == split_ids["train"] and {u.id for u in dv} == split_ids["dev"]
    first = next(u for u in dv if u.id == "an251-fash-b")
    assert first.text == "YES" and first.speaker == "fash"
    assert first.duration == pytest.approx(1.0)
    assert all(u.duration > 0 and u.text and "<" not in u.text for u in tr + dv)


def test_a_download_gets_the_dev_split_of_the_projects_results(tmp_path):
    """Without a splits file (a fresh download), the dev speakers are the 8 of RESULTS.md."""
    from data_prep.an4 import DEV_SPEAKERS
    assert DEV_SPEAKERS == (REAL_AN4 / "splits" / "dev_speakers.txt").read_text().split()
    copy = tmp_path / "an4"
    (copy / "etc").mkdir(parents=True)
    shutil.copy(REAL_AN4 / "etc" / "an4_train.transcription", copy / "etc")
    (copy / "wav").symlink_to(REAL_AN4 / "wav")
    outs = prepare_an4(copy, tmp_path / "m")
    split_ids = {s: set((REAL_AN4 / "splits" / f"{s}.lst").read_text().split()) for s in ("train", "dev")}
    assert {u.id for u in read_manifest(outs["dev"])} == split_ids["dev"]
    assert {u.id for u in read_manifest(outs["train"])} == split_ids["train"]
