"""Model combination: posterior averaging through asr combine, evaluate, transcribe and the API."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import soundfile as sf
import torch

from asr.combine import Combination, average_posteriors
from asr.errors import UserError
from asr.inference import load_model
from asr.manifest import read_manifest
from asr.tokenizer import CharTokenizer
from conftest import run_cli
from test_align import SR, tone_recognizer, tone_sentence


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A tone model, a second one (its weights perturbed: another model with the same tokens),
    a third with other tokens, and a manifest of six tone sentences."""
    d = tmp_path_factory.mktemp("combine")
    rng = random.Random(5)
    lines, paths = [], []
    for i in range(6):
        wave, text, _ = tone_sentence(rng, 2)
        paths.append(d / f"f{i}.wav")
        sf.write(paths[-1], wave, SR)
        lines.append(json.dumps({"id": f"f{i}", "audio_path": str(paths[-1]), "speaker": "s",
                                 "duration": len(wave) / SR, "text": text}))
    (d / "set.jsonl").write_text("\n".join(lines) + "\n")
    a = tone_recognizer()
    a.save(d / "a.pt")
    b = copy.deepcopy(a)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in b.model.parameters():
            p.add_(0.2 * p.std().nan_to_num(0.0) * torch.randn(p.shape, generator=g))
    b.save(d / "b.pt")
    c = copy.deepcopy(a)
    c.tokenizer = CharTokenizer(list(a.tokenizer.symbols[:-1]) + ["Q"])
    c.save(d / "c.pt")
    return d, paths


def _rounded(obj):
    """Floats to 5 significant digits (log-sum-exp of a value with itself rounds at 1e-8)."""
    if isinstance(obj, float):
        return float(f"{obj:.5g}")
    if isinstance(obj, dict):
        return {k: _rounded(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_rounded(v) for v in obj]
    return obj


def _emissions(rec, utts) -> dict[str, torch.Tensor]:
    return {uid: lp[k, :int(n[k])] for ids, lp, n in rec.emissions(utts)
            for k, uid in enumerate(ids)}


def test_posterior_averaging_of_two_models(models, capsys):
    d, _ = models
    code, out, err = run_cli(["combine", d / "a.pt", d / "b.pt", "-o", d / "ab.yaml"], capsys)
    assert code == 0, err
    ab = load_model(d / "ab.yaml")
    assert isinstance(ab, Combination) and len(ab.members) == 2
    utts = read_manifest(d / "set.jsonl")
    ea, eb, eab = (_emissions(r, utts) for r in (load_model(d / "a.pt"), load_model(d / "b.pt"), ab))
    for uid in ea:
        assert not torch.allclose(ea[uid], eb[uid], atol=1e-3)  # two different models
        want = torch.log((ea[uid].exp() + eb[uid].exp()) / 2)
        torch.testing.assert_close(eab[uid], want, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(eab[uid].exp().sum(-1), torch.ones(len(want)), atol=1e-4,
                                   rtol=1e-4)


def test_a_model_combined_with_itself_gives_that_models_output(models, capsys):
    d, paths = models
    assert run_cli(["combine", d / "a.pt", d / "a.pt", "-o", d / "aa.yaml"], capsys)[0] == 0
    outs = {}
    for name in ("a.pt", "aa.yaml"):
        code, _, err = run_cli(["evaluate", d / name, d / "set.jsonl", "--out", d / f"ev_{name}"],
                               capsys)
        assert code == 0, err
        outs[name] = [json.loads(x) for x in (d / f"ev_{name}" / "hyps.jsonl").read_text().splitlines()]
        code, out, err = run_cli(["transcribe", d / name, *paths, "--format", "json"], capsys)
        assert code == 0, err
        outs[name + "/t"] = [json.loads(x) for x in out.splitlines()]
    for key in ("a.pt", "a.pt/t"):  # texts and word times equal; scores to float rounding
        one, two = outs[key], outs[key.replace("a.pt", "aa.yaml")]
        assert [_rounded(x) for x in one] == [_rounded(x) for x in two]
        assert [x["text"] for x in one] == [x["text"] for x in two]
    assert sum(e["text"] == e["ref"] for e in outs["a.pt"]) >= 4  # the model works on these
    # the averaged log-probs are the model's own
    utts = read_manifest(d / "set.jsonl")
    ea, eaa = _emissions(load_model(d / "a.pt"), utts), _emissions(load_model(d / "aa.yaml"), utts)
    for uid in ea:
        torch.testing.assert_close(eaa[uid], ea[uid], atol=1e-6, rtol=1e-6)
    api = load_model(d / "aa.yaml").recognize(paths)
    assert [h.text for h in api] == [t["text"] for t in outs["a.pt/t"]]


def test_average_posteriors_is_a_mean_of_probabilities() -> None:
    p = torch.tensor([[0.5, 0.5], [0.9, 0.1]]).log()
    q = torch.tensor([[0.1, 0.9], [0.7, 0.3]]).log()
    got = average_posteriors([p, q]).exp()
    torch.testing.assert_close(got, torch.tensor([[0.3, 0.7], [0.8, 0.2]]))
    assert average_posteriors([p]) is p
    assert math.isclose(float(average_posteriors([p, p, p]).exp().sum()), 2.0, rel_tol=1e-6)


def test_combination_errors_are_one_line(models, capsys):
    d, _ = models
    code, _, err = run_cli(["combine", d / "a.pt", d / "c.pt", "-o", d / "ac.yaml"], capsys)
    assert code != 0 and "tokens differ" in err and len(err.strip().splitlines()) == 1
    assert not (d / "ac.yaml").exists()
    code, _, err = run_cli(["combine", d / "a.pt", "-o", d / "one.yaml"], capsys)
    assert code != 0 and "at least two" in err
    (d / "bad.yaml").write_text("features: {kind: fbank}\n")
    code, _, err = run_cli(["evaluate", d / "bad.yaml", d / "set.jsonl", "--out", d / "x"], capsys)
    assert code != 0 and "not a combination file" in err and "Traceback" not in err
    (d / "gone.yaml").write_text("format: asr-combination\nmodels: [a.pt, missing.pt]\n")
    code, _, err = run_cli(["transcribe", d / "gone.yaml", str(d / "f0.wav")], capsys)
    assert code != 0 and "missing.pt" in err and len(err.strip().splitlines()) == 1
    assert run_cli(["combine", d / "a.pt", d / "b.pt", "-o", d / "ab2.yaml"], capsys)[0] == 0
    with pytest.raises(UserError, match="cannot stream"):
        load_model(d / "ab2.yaml").stream()
