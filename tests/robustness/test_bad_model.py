"""Bad model files through ``asr evaluate`` and ``asr transcribe``: another format version, a
truncated file, a file that is no model, a folder, a pickle that would run code. One line naming
the file, exit 2, nothing written, and the pickle's code never runs. (The library-level checks
are in tests/test_checkpoint.py.)"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from asr.checkpoint import VERSION, atomic_save, safe_load
from conftest import make_wav

from .helpers import assert_user_error, listing, manifest_line, run_cli, save_tiny_model


class _Evil:
    """Unpickling this calls open(marker, "w"): code run at load time."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _evil(d: Path, good: Path) -> Path:
    obj = safe_load(good)
    obj["extra"] = _Evil(str(d / "pwned"))
    torch.save(obj, d / "evil.pt")
    return d / "evil.pt"


def _incomplete(d: Path, good: Path) -> Path:
    obj = safe_load(good)
    del obj["tokenizer"]
    atomic_save(obj, d / "incomplete.pt")
    return d / "incomplete.pt"


def _mismatched(d: Path, good: Path) -> Path:
    """A model file whose weights do not fit its own config (hidden 8 vs 16)."""
    obj = safe_load(good)
    other = safe_load(save_tiny_model(d / "other.pt"))
    obj["model"] = {k: torch.cat([v, v]) if v.dim() else v for k, v in other["model"].items()}
    atomic_save(obj, d / "mismatched.pt")
    return d / "mismatched.pt"


def _truncated(d: Path, good: Path) -> Path:
    (d / "truncated.pt").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    return d / "truncated.pt"


def _future(d: Path, good: Path) -> Path:
    atomic_save(dict(safe_load(good), version=VERSION + 1), d / "future.pt")
    return d / "future.pt"


def _foreign(d: Path, good: Path) -> Path:
    atomic_save({"state_dict": {"w": torch.zeros(3)}}, d / "foreign.pt")
    return d / "foreign.pt"


def _text(d: Path, good: Path) -> Path:
    (d / "notes.pt").write_text("this is not a model\n" * 20)
    return d / "notes.pt"


def _folder(d: Path, good: Path) -> Path:
    (d / "folder.pt").mkdir()
    return d / "folder.pt"


def _random_bytes(d: Path, good: Path) -> Path:
    (d / "random.pt").write_bytes(np.random.default_rng(0).integers(0, 256, 4000, np.uint8)
                                  .tobytes())
    return d / "random.pt"


# The whole message for a file that is no model file: torch's own exception text (for these
# files "pop from empty list", "Unsupported operand 95", "PytorchStreamReader failed reading zip
# archive...") is not shown.
NOT_OURS = "{p}: not a model file written by asr train (truncated or another format)"
# Fragments of torch's and pickle's exception texts that must never reach the user.
INTERNAL = ("pop from empty list", "index out of range", "Unsupported operand", "Errno",
            "PytorchStreamReader", "WeightsUnpickler", "weights_only", "add_safe_globals",
            "unpack requires", "Traceback")

# name -> (maker, message; "{p}" is the file)
MODELS = {
    "evil": (_evil, "refusing to load {p}: it is not a plain weights file (would need to run "
                    "pickled code)"),
    "future_version": (_future, f"{{p}} has format version {VERSION + 1}; this asr reads "
                                f"version {VERSION}"),
    "foreign_checkpoint": (_foreign, "{p} is not an asr model file"),
    "truncated": (_truncated, NOT_OURS),
    "text_file": (_text, NOT_OURS),
    "random_bytes": (_random_bytes, NOT_OURS),
    "folder": (_folder, "model file {p} is a folder, not a file"),
    "incomplete": (_incomplete, "{p} is an incomplete asr model file (missing or malformed: "
                                "tokenizer)"),
    "mismatched": (_mismatched, "{p}: its weights do not fit its config ("),
}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, model_file):
    d = tmp_path_factory.mktemp("models")
    make_wav(d / "a.wav", seconds=0.5)
    (d / "m.jsonl").write_text(manifest_line(d / "a.wav") + "\n")
    models = {name: (make(d, model_file), msg) for name, (make, msg) in MODELS.items()}
    return d, models


def _cases():
    for name in MODELS:
        for cmd in ("evaluate", "transcribe"):
            yield pytest.param(name, cmd, id=f"{cmd}-{name}")


@pytest.mark.parametrize("name, cmd", list(_cases()))
def test_bad_model_file(name, cmd, inputs, tmp_path, capsys):
    d, models = inputs
    path, message = models[name]
    out = tmp_path / "out"
    argv = ([cmd, path, d / "m.jsonl", "--out", out] if cmd == "evaluate"
            else [cmd, path, d / "a.wav", "-o", out])
    line = assert_user_error(run_cli(argv, capsys), message.format(p=path))
    if message == NOT_OURS:
        assert line == f"asr: error: {NOT_OURS.format(p=path)}"
    leaked = [s for s in INTERNAL if s in line]
    assert not leaked, f"internal exception text {leaked} in {line!r}"
    assert listing(out) == []
    assert not (d / "pwned").exists(), "loading the model file ran its pickled code"


def test_the_evil_file_really_runs_code_when_unpickled(inputs):
    """Guard for the refusal above: an unsafe load of the same file creates the marker."""
    d, models = inputs
    marker = d / "pwned"
    assert not marker.exists()
    torch.load(models["evil"][0], weights_only=False)  # the one place this is allowed: a test
    assert marker.exists()
    marker.unlink()
