"""Model files: save/load round trip, refusal of pickled code, truncated and foreign files."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import asr
from asr.checkpoint import FORMAT, VERSION, atomic_save, safe_load
from asr.config import load_config
from asr.errors import UserError
from asr.inference import Recognizer
from asr.tokenizer import CharTokenizer
from conftest import make_wav

TINY = ["model.hidden=8", "model.layers=2", "model.conv_dim=8", "model.subsampling=conv",
        "features.n_mels=20", "features.deltas=1", "features.kind=logmel", "model.proj=6"]


def tiny_recognizer(seed: int = 0) -> Recognizer:
    torch.manual_seed(seed)
    cfg = load_config(None, TINY)
    tok = CharTokenizer.build(["AB C"])
    d = cfg.features.dim
    cmvn = {"mean": torch.randn(d), "std": torch.rand(d) + 0.5}
    rec = Recognizer(cfg, tok, cmvn)
    with torch.no_grad():  # make the weights far from the default init
        for p in rec.model.parameters():
            p.add_(torch.randn_like(p))
    return rec


def test_save_load_roundtrip_same_outputs(tmp_path):
    rec = tiny_recognizer()
    path = tmp_path / "model.pt"
    rec.save(path, {"note": "hello"})
    loaded = asr.load_model(path)
    assert loaded.cfg == rec.cfg
    assert loaded.tokenizer.symbols == rec.tokenizer.symbols
    for k in ("mean", "std"):
        assert torch.equal(loaded.cmvn[k], rec.cmvn[k])
    assert not loaded.model.training
    x = torch.randn(2, 30, rec.cfg.features.dim)
    lens = torch.tensor([30, 21])
    with torch.no_grad():
        a, al = rec.model.eval()(x, lens)
        b, bl = loaded.model(x, lens)
    assert torch.equal(a, b) and torch.equal(al, bl)
    # the whole path from audio: features + CMVN + network + decoding
    make_wav(tmp_path / "a.wav", seconds=0.4, sr=8000, noise=0.1)
    ha, hb = rec.recognize([tmp_path / "a.wav"]), loaded.recognize([tmp_path / "a.wav"])
    assert ha == hb
    assert safe_load(path)["note"] == "hello"


def test_loaded_model_differs_from_another_model(tmp_path):
    """Guard for the round trip above: a different model gives different log-probs."""
    tiny_recognizer(0).save(tmp_path / "m0.pt")
    x, lens = torch.randn(1, 12, 40), torch.tensor([12])
    with torch.no_grad():
        a = asr.load_model(tmp_path / "m0.pt").model(x, lens)[0]
        b = tiny_recognizer(1).model.eval()(x, lens)[0]
    assert not torch.allclose(a, b)


class _Evil:
    """Unpickling this object calls open(marker, "w"): arbitrary code at load time."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_pickled_code_is_refused_without_running(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    rec = tiny_recognizer()
    torch.save({"format": FORMAT, "version": VERSION, "config": {}, "tokenizer": {},
                "cmvn": rec.cmvn, "model": rec.model.state_dict(), "x": _Evil(str(marker))},
               path)
    assert not marker.exists()
    with pytest.raises(UserError, match="refusing to load .*evil.pt") as e:
        asr.load_model(path)
    assert "\n" not in str(e.value)
    assert not marker.exists()
    # the file really is dangerous: an unsafe load runs the code
    torch.load(path, weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("keep", [0.5, 0.95, 10])
def test_truncated_model_file_is_user_error(tmp_path, keep):
    full = tmp_path / "model.pt"
    tiny_recognizer().save(full)
    data = full.read_bytes()
    n = int(len(data) * keep) if keep < 1 else keep
    cut = tmp_path / "cut.pt"
    cut.write_bytes(data[:n])
    with pytest.raises(UserError, match="cut.pt") as e:
        asr.load_model(cut)
    assert str(e.value) == f"{cut}: {NOT_OURS}"  # one line, none of torch's own text


# What a file that is no model file gets, whatever torch raised reading it ("pop from empty
# list", "PytorchStreamReader failed reading zip archive...", "Unsupported operand 95"...).
NOT_OURS = "not a model file written by asr train (truncated or another format)"


@pytest.mark.parametrize("content", [
    b"", b"not a model at all\n", b"PK\x03\x04garbage",
    # arbitrary bytes read as a legacy pickle make torch's weights-only unpickler raise
    # IndexError ("t": TUPLE with no mark, "pop from empty list"), KeyError ("h": memo get),
    # struct.error ("j") or UnpicklingError ("Unsupported operand" for random bytes)
    b"this is not a model\n", b"hK", b"jur", b"\x80",
    np.random.default_rng(0).integers(0, 256, 4000, np.uint8).tobytes(),
])
def test_foreign_file_is_user_error(tmp_path, content):
    p = tmp_path / "x.pt"
    p.write_bytes(content)
    with pytest.raises(UserError, match="x.pt") as e:
        asr.load_model(p)
    assert str(e.value) == f"{p}: {NOT_OURS}"
    assert "pop from empty list" not in str(e.value)


def test_checkpoint_message_says_checkpoint(tmp_path):
    p = tmp_path / "last.pt"
    p.write_bytes(b"this is not a model\n")
    with pytest.raises(UserError) as e:
        safe_load(p, "checkpoint")
    assert str(e.value) == (f"{p}: not a checkpoint written by asr train (truncated or "
                            "another format)")


def test_refused_object_is_named_not_torch_advice(tmp_path):
    """A checkpoint holding a numpy scalar is refused, naming the object; torch's advice to
    allowlist it (add_safe_globals) is not passed on."""
    p = tmp_path / "np.pt"
    torch.save({"format": FORMAT, "version": VERSION, "loss": np.float64(1.5)}, p)
    with pytest.raises(UserError) as e:
        safe_load(p)
    msg = str(e.value)
    assert msg.startswith(f"refusing to load {p}: it is not a plain weights file (would need "
                          "to run pickled code); it holds the Python object numpy.")
    assert "\n" not in msg and "safe_globals" not in msg and "weights_only" not in msg


def test_wrong_format_or_version_is_user_error(tmp_path):
    atomic_save({"weights": torch.zeros(2)}, tmp_path / "plain.pt")
    with pytest.raises(UserError, match="not an asr"):
        asr.load_model(tmp_path / "plain.pt")
    atomic_save({"format": FORMAT, "version": VERSION + 1}, tmp_path / "future.pt")
    with pytest.raises(UserError, match="version"):
        asr.load_model(tmp_path / "future.pt")
    with pytest.raises(UserError, match="not found"):
        asr.load_model(tmp_path / "missing.pt")


def test_atomic_save_leaves_no_temporary_files(tmp_path):
    atomic_save({"format": FORMAT, "version": VERSION, "a": torch.ones(3)}, tmp_path / "f.pt")
    assert [p.name for p in tmp_path.iterdir()] == ["f.pt"]
    assert torch.equal(safe_load(tmp_path / "f.pt")["a"], torch.ones(3))
