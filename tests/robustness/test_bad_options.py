"""Bad command-line options: numbers out of range, paths that do not exist, an output folder that
is a file, a device that is not there. One line, exit 2, nothing written (``asr transcribe``'s
inputs that yield no file: exit 1, as for any failed input)."""

from __future__ import annotations

import pytest
import torch

from conftest import make_wav

from .helpers import EXIT_FAILED, assert_user_error, listing, manifest_line, run_cli


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("opts")
    make_wav(d / "a.wav", seconds=0.5)
    (d / "m.jsonl").write_text(manifest_line(d / "a.wav") + "\n")
    (d / "a_file").write_text("I am a file\n")
    (d / "no_audio").mkdir()
    (d / "no_audio" / "notes.txt").write_text("no audio here\n")
    return d


# transcribe options -> message (argparse: "asr transcribe: error: argument ...")
NUMBERS = {
    ("--batch-size", "0"): "argument --batch-size: must be > 0, got 0",
    ("--batch-size", "-4"): "argument --batch-size: must be > 0, got -4",
    ("--batch-size", "two"): "argument --batch-size: expected int > 0, got 'two'",
    ("--chunk-seconds", "-5"): "argument --chunk-seconds: must be > 0, got -5",
    ("--chunk-seconds", "nan"): "argument --chunk-seconds: must be > 0, got nan",
    ("--chunk-seconds", "inf"): "argument --chunk-seconds: must be > 0, got inf",
    ("--overlap-seconds", "-1"): "argument --overlap-seconds: must be >= 0, got -1",
    ("--threads", "-2"): "argument --threads: must be >= 0, got -2",
    ("--max-cue-chars", "0"): "argument --max-cue-chars: must be > 0, got 0",
    ("--max-cue-seconds", "-1"): "argument --max-cue-seconds: must be > 0, got -1",
    ("--segment", "fixed", "--chunk-seconds", "10", "--overlap-seconds", "10"):
        "overlap (10.0 s) must be >= 0 and shorter than the chunk (10.0 s)",
    ("--pause-seconds", "0"): "argument --pause-seconds: must be > 0, got 0",
    ("--pause-db", "-3"): "argument --pause-db: must be > 0, got -3",
    ("--chunk-seconds", "1", "--pause-seconds", "0.5"):
        "pause (0.5 s) must be > 0 and shorter than half the chunk (1.0 s)",
}


@pytest.mark.parametrize("opts", list(NUMBERS), ids=" ".join)
def test_transcribe_numbers_out_of_range(opts, files, model_file, capsys):
    out = files / "out_numbers"
    assert_user_error(run_cli(["transcribe", model_file, files / "a.wav", "-o", out, *opts],
                              capsys), NUMBERS[opts])
    assert listing(out) == []


def test_paths_that_do_not_exist(files, model_file, tmp_path, capsys):
    # transcribe: an input that yields no file is one failed input, not the batch (exit 1)
    assert_user_error(run_cli(["transcribe", model_file, f"@{tmp_path / 'list.txt'}"], capsys),
                      f"list file not found: {tmp_path / 'list.txt'}", code=EXIT_FAILED)
    assert_user_error(run_cli(["transcribe", model_file, files / "no_audio"], capsys),
                      f"no audio files under {files / 'no_audio'}", code=EXIT_FAILED)
    assert_user_error(run_cli(["evaluate", model_file, tmp_path / "nope.jsonl", "--out",
                               tmp_path / "o"], capsys),
                      f"manifest not found: {tmp_path / 'nope.jsonl'}")
    assert_user_error(run_cli(["train", "--train", files / "m.jsonl", "--dev",
                               tmp_path / "nope.jsonl", "--exp-dir", tmp_path / "exp"], capsys),
                      f"manifest not found: {tmp_path / 'nope.jsonl'}")
    assert_user_error(run_cli(["train", "--train", files / "m.jsonl", "--dev", files / "m.jsonl",
                               "--exp-dir", tmp_path / "exp2", "--resume"], capsys),
                      f"--resume: no checkpoint at {tmp_path / 'exp2' / 'checkpoints' / 'last.pt'}")
    assert listing(tmp_path / "o") == []


def test_output_folder_is_a_file(files, model_file, capsys):
    f = files / "a_file"
    assert_user_error(run_cli(["evaluate", model_file, files / "m.jsonl", "--out", f], capsys),
                      f"output folder {f} is a file")
    assert_user_error(run_cli(["evaluate", model_file, files / "m.jsonl", "--out", f / "sub"],
                              capsys), f"cannot create output folder {f / 'sub'}: {f} is a file")
    assert_user_error(run_cli(["transcribe", model_file, files / "a.wav", "-o", f], capsys),
                      f"output folder {f} is a file")
    assert_user_error(run_cli(["train", "--train", files / "m.jsonl", "--dev", files / "m.jsonl",
                               "--exp-dir", f], capsys), f"output folder {f} is a file")
    assert f.read_text() == "I am a file\n"


def test_existing_run_without_resume(files, tmp_path, capsys):
    (tmp_path / "exp" / "checkpoints").mkdir(parents=True)
    (tmp_path / "exp" / "checkpoints" / "last.pt").write_bytes(b"x")
    assert_user_error(run_cli(["train", "--train", files / "m.jsonl", "--dev", files / "m.jsonl",
                               "--exp-dir", tmp_path / "exp"], capsys),
                      f"{tmp_path / 'exp'} already holds a run; use --resume or another --exp-dir")


@pytest.mark.parametrize("device, message", [
    ("banana", "--device 'banana': expected cpu, cuda or cuda:N"),
    ("cuda:7", "--device cuda:7: CUDA is not available on this machine"
     if not torch.cuda.is_available() else "--device cuda:7: this machine has"),
])
def test_bad_device(device, message, files, model_file, capsys):
    for argv in (["transcribe", model_file, files / "a.wav"],
                 ["evaluate", model_file, files / "m.jsonl", "--out", files / "out_dev"]):
        assert_user_error(run_cli([*argv, "--device", device], capsys), message)
    assert listing(files / "out_dev") == []
