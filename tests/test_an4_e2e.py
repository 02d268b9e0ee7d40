"""End to end on real speech: the AN4 recipe's stages on ../shared/data/an4 with a short training,
then the same dev files through asr transcribe and the Python API.

A broken pipeline (features, targets, model, loss, decoding) cannot reach a dev CER well below
chance. Chance here is the CER of the best constant answer: the most frequent training transcript.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from pathlib import Path

import asr
from asr.manifest import read_manifest
from conftest import run_cli
from asr.scoring import error_counts

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "data" / "an4"

# A few minutes on 2 CPU cores.
SHORT = ["train.epochs=10", "model.hidden=160", "model.layers=2", "model.subsample=3",
         "model.layer_norm=true", "model.dropout=0.1", "data.speed_perturb=[1.0]",
         "train.lr=3e-3", "train.warmup_steps=100", "train.average_best=2",
         "data.max_batch=16", "data.max_frames=8000", "train.inter_ctc_layer=0",
         "tokenizer.kind=char",  # a word model learns too slowly for 10 epochs
         # one file alone has no speaker, so per-speaker CMVN would make asr evaluate (the
         # manifest's speakers) and asr transcribe (the file's own statistics) differ
         "features.speaker_cmvn=false"]


def test_an4_recipe_short_training_beats_chance(tmp_path: Path, capsys) -> None:
    assert CORPUS.is_dir(), f"AN4 corpus missing at {CORPUS}"
    exp, data = tmp_path / "exp", tmp_path / "data"
    published = (ROOT / "recipes/an4/RESULTS.md").read_text()
    r = subprocess.run(["bash", str(ROOT / "recipes/an4/run.sh"), "--corpus", str(CORPUS),
                        "--exp-dir", str(exp), "--data-dir", str(data), "--no-lm",
                        "--results-md", str(tmp_path / "RESULTS.md"), "--models", "1", *SHORT],
                       capture_output=True, text=True, timeout=1500)
    assert r.returncode == 0, (r.stdout[-2000:], r.stderr[-3000:])

    train = read_manifest(data / "an4_train.jsonl")
    dev = read_manifest(data / "an4_dev.jsonl")
    assert (len(train), len(dev)) == (851, 97)
    assert not {u.speaker for u in train} & {u.speaker for u in dev}

    constant = Counter(u.text for u in train).most_common(1)[0][0]
    chance = error_counts([u.text for u in dev], [constant] * len(dev))[1].rate
    summary = json.loads((exp / "decode_dev_greedy" / "wer.json").read_text())
    cer = summary["cer"]["rate"]
    assert cer < 0.5 * chance, f"dev CER {cer:.3f} is not well below chance {chance:.3f}"
    assert (exp / "decode_dev_greedy" / "report" / "report.html").is_file()
    # the short run's table goes where --results-md says, never into the published results
    assert "| dev | greedy | 97 |" in (tmp_path / "RESULTS.md").read_text()
    assert (ROOT / "recipes/an4/RESULTS.md").read_text() == published

    # One road: asr transcribe and the Python API give every dev file the text and the word
    # times of asr evaluate (each file is shorter than a segment, so it is decoded whole).
    model = exp / "model.pt"
    jsonl = [json.loads(line) for line in
             (exp / "decode_dev_greedy" / "hyps.jsonl").read_text().splitlines()]
    by_id = {u.id: u for u in dev}
    paths = [by_id[h["id"]].audio_path for h in jsonl]
    code, out, err = run_cli(["transcribe", str(model), *paths, "--format", "json"], capsys)
    assert code == 0, err
    transcripts = [json.loads(line) for line in out.splitlines()]
    api = asr.load_model(model).recognize(paths)
    for h, t, a in zip(jsonl, transcripts, api, strict=True):
        assert t["text"] == h["text"] == a.text
        assert [w["word"] for w in t["words"]] == [w["word"] for w in h["words"]] \
            == [w.word for w in a.words]
        for tw, hw, aw in zip(t["words"], h["words"], a.words):
            assert tw["start"] == round(hw["start"], 3) == round(aw.start, 3)
            assert tw["end"] == round(hw["end"], 3) == round(aw.end, 3)
