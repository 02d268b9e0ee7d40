"""data_prep.cli: ``asr prepare <corpus>`` parses, dispatches to the library and prints split paths."""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from asr.manifest import read_manifest
from data_prep.cli import add_parser


def _parse(argv):
    parser = argparse.ArgumentParser(prog="asr")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_prepare_fsdd_and_export(tmp_path, capsys):
    rec = tmp_path / "fsdd" / "recordings"
    rec.mkdir(parents=True)
    for spk in ("theo", "lucas"):
        for i in range(6):
            sf.write(rec / f"3_{spk}_{i}.wav", np.zeros(400, dtype=np.int16), 8000)
    args = _parse(["prepare", "fsdd", "--corpus", str(tmp_path / "fsdd"), "--out", str(tmp_path / "m"),
                   "--holdout-speaker", "lucas"])
    assert args.func(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"train\t{tmp_path / 'm' / 'fsdd_train.jsonl'}", f"test\t{tmp_path / 'm' / 'fsdd_test.jsonl'}"]
    assert {u.speaker for u in read_manifest(tmp_path / "m" / "fsdd_test.jsonl")} == {"lucas"}

    args = _parse(["prepare", "fsdd", "--corpus", str(tmp_path / "fsdd"), "--out", str(tmp_path / "l"),
                   "--split", "loso", "--with-dev"])
    assert args.func(args) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 * 4
    dev = read_manifest(tmp_path / "l" / "fsdd_loso_lucas_dev.jsonl")  # lucas is the test speaker
    assert [u.id for u in dev] == [f"3_theo_{i}" for i in range(5)]
    assert [u.id for u in read_manifest(tmp_path / "l" / "fsdd_loso_lucas_train5.jsonl")] == ["3_theo_5"]

    args = _parse(["prepare", "export-kaldi", "--manifest", str(tmp_path / "m" / "fsdd_test.jsonl"),
                   "--out", str(tmp_path / "kaldi")])
    assert args.func(args) == 0
    assert (tmp_path / "kaldi" / "text").read_text().startswith("3_lucas_0 THREE\n")


def test_an4_entry_calls_the_library_lazily(tmp_path, monkeypatch, capsys):
    calls = []

    def prepare_an4(corpus_dir: Path, out_dir: Path, dev_speakers=None):
        calls.append((corpus_dir, out_dir, dev_speakers))
        return {"train": out_dir / "an4_train.jsonl"}

    def download_an4(target_dir, source="auto", url=None, sha256=None):
        calls.append(("download", target_dir, source, url, sha256))
        return Path(target_dir) / "an4"

    monkeypatch.setitem(sys.modules, "data_prep.an4", types.SimpleNamespace(
        prepare_an4=prepare_an4, download_an4=download_an4))
    args = _parse(["prepare", "an4", "--corpus", "c", "--out", "o", "--dev-speakers", "fash", "fbbh"])
    assert args.func(args) == 0
    assert calls == [(Path("c"), Path("o"), ["fash", "fbbh"])]
    assert capsys.readouterr().out == f"train\t{Path('o') / 'an4_train.jsonl'}\n"
    calls.clear()
    args = _parse(["prepare", "an4", "--download", "--corpus", "dl", "--out", "o", "--source", "github"])
    assert args.func(args) == 0
    assert calls == [("download", Path("dl"), "github", None, None), (Path("dl") / "an4", Path("o"), None)]


@pytest.mark.parametrize("argv", [
    ["prepare", "yesno", "--corpus", "c", "--out", "o", "--download"],
    ["prepare", "librispeech", "--corpus", "c", "--out", "o", "--download", "--subsets", "dev-clean-2"],
    ["prepare", "timit", "--corpus", "c", "--out", "o", "--phones", "48"],
    ["prepare", "commonvoice", "--corpus", "c", "--out", "o", "--lang", "cy", "--splits", "train"],
    ["prepare", "tedlium", "--corpus", "c", "--out", "o", "--unk", "<UNK>", "--no-join-suffixes"],
    ["prepare", "kaldi", "--corpus", "c", "--out", "o", "--name", "train"],
    ["prepare", "nemo", "--corpus", "c.json", "--out", "o"],
    ["prepare", "export-nemo", "--manifest", "m.jsonl", "--out", "n.json"],
])
def test_every_subcommand_parses(argv):
    args = _parse(argv)
    assert args.corpus_name == argv[1] and callable(args.func)


def test_missing_corpus_is_a_user_error(tmp_path):
    from asr.errors import UserError

    args = _parse(["prepare", "timit", "--corpus", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    with pytest.raises(UserError, match="TIMIT corpus folder not found"):
        args.func(args)
