"""Every recipe end to end on its fake miniature corpus (``run.sh --smoke``).

The recipes run two at a time (they are mostly process start-up and I/O) into temporary folders;
each test then checks its recipe's exit status, score summaries and results table, and that the
recipe's own RESULTS.md was left alone.

Both decoders are required: greedy, and beam search with the recipe's LM (a missing beam decoder
fails here rather than shrinking the check), and wer.json names the decoder that ran. The smoke
models train for one epoch and barely learn: in the smoke runs at de0e561 greedy WER was
100-472% (garbage characters, many insertions) and beam WER 62-100%. What the test can hold
them to: beam search emits words (a search returning nothing fails), only words the decoder was
given (the lexicon's, or the LM's for a lexicon-free word model), and at most BEAM_WER_MAX;
greedy stays below GREEDY_WER_MAX. Both bounds leave a margin over those runs.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# recipe -> the test sets whose scores must exist (folder names under the exp dir)
RECIPES = {
    "an4": ["decode_dev", "decode_test"],
    "yesno": ["decode_test"],
    "fsdd": ["fold_jackson/decode_jackson", "fold_theo/decode_theo"],
    "librispeech": ["decode_dev-clean", "decode_test-clean", "decode_test-other"],
    "timit": ["decode_dev", "decode_test"],
    "commonvoice": ["decode_dev", "decode_test"],
    "tedlium": ["decode_dev", "decode_test"],
}
DECODERS = ("greedy", "beam")
BEAM_WER_MAX = 1.25  # observed at most 1.00 (tedlium, commonvoice dev)
GREEDY_WER_MAX = 6.0  # observed at most 4.72 (timit dev)


def _vocabulary(decoder: dict) -> set[str]:
    """The words a beam search may emit: its lexicon's, else its LM's unigrams."""
    if decoder["lexicon"]:
        lines = Path(decoder["lexicon"]).read_text(encoding="utf-8").splitlines()
        return {ln.split()[0] for ln in lines if ln.strip()}
    words, in_unigrams = set(), False
    for ln in Path(decoder["lm"]).read_text(encoding="utf-8").splitlines():
        if ln.startswith("\\"):
            in_unigrams = ln.strip() == "\\1-grams:"
        elif in_unigrams and ln.strip():
            words.add(ln.split()[1])
    return words - {"<s>", "</s>", "<unk>"}


def _run(recipe: str, exp: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(["bash", str(ROOT / "recipes" / recipe / "run.sh"), "--smoke", "--exp-dir", str(exp)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """recipe -> (exp dir, CompletedProcess, RESULTS.md text before the run)."""
    assert shutil.which("bash"), "the recipes need bash"
    base = tmp_path_factory.mktemp("recipes")
    before = {r: (ROOT / "recipes" / r / "RESULTS.md").read_text() for r in RECIPES}
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {r: pool.submit(_run, r, base / r) for r in RECIPES}
        return {r: (base / r, f.result(), before[r]) for r, f in futures.items()}


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_recipe_smoke(smoke_runs, recipe):
    exp, proc, results_before = smoke_runs[recipe]
    assert proc.returncode == 0, f"{recipe} --smoke failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    for name in RECIPES[recipe]:
        wers = {}
        for dec in DECODERS:
            out = exp / f"{name}_{dec}"
            summary, counts = out / "report" / "summary.json", out / "wer.json"
            assert summary.is_file() and counts.is_file(), f"missing {summary} or {counts}"
            s, w = json.loads(summary.read_text()), json.loads(counts.read_text())
            # the decoder that ran is the one the folder is named after
            kind = w["decoder"] if isinstance(w["decoder"], str) else w["decoder"]["type"]
            assert kind == dec, (out, w["decoder"])
            if dec == "beam":
                assert Path(w["decoder"]["lm"]).is_file(), w["decoder"]  # with the recipe's LM
                vocab = _vocabulary(w["decoder"])
                hyp_words = [t for ln in (out / "hyp.txt").read_text().splitlines()
                             for t in ln.split()[1:]]
                assert hyp_words and s["words"]["hyp_len"] == len(hyp_words), out
                assert set(hyp_words) <= vocab, (out, set(hyp_words) - vocab)
            # evaluate's count and the scoring report agree, on every utterance of the set
            e = w["wer"]
            assert s["n_utterances"] == w["utterances"] > 0 and s["n_missing_hyp"] == 0
            assert e["hits"] + e["sub"] + e["dele"] == e["ref"] > 0
            assert math.isclose(e["rate"], (e["sub"] + e["dele"] + e["ins"]) / e["ref"])
            assert math.isclose(s["wer"], e["rate"]), (s["wer"], e["rate"])
            wers[dec] = e["rate"]
        assert wers["beam"] <= BEAM_WER_MAX and wers["greedy"] < GREEDY_WER_MAX, (name, wers)
    table = (exp / "RESULTS.md").read_text()
    assert "<!-- results:" in table and "| greedy |" in table and "- machine: nproc" in table
    assert "| beam " in table, table
    # --smoke writes its table into the exp dir, never into the recipe's RESULTS.md
    assert (ROOT / "recipes" / recipe / "RESULTS.md").read_text() == results_before


def test_models_option_trains_several_seeds_and_decodes_their_combination(tmp_path):
    """``--models 2``: two members with consecutive seeds, combined (asr combine) and decoded as
    one model; the combination's decode.yaml is tuned on dev beside model.yaml."""
    exp = tmp_path / "an4x2"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.run(["bash", str(ROOT / "recipes" / "an4" / "run.sh"), "--smoke", "--exp-dir",
                           str(exp), "--models", "2", "train.seed=7"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    import yaml

    combo = yaml.safe_load((exp / "model.yaml").read_text())
    assert combo == {"format": "asr-combination", "models": ["seed1/model.pt", "seed2/model.pt"]}
    seeds = [yaml.safe_load((exp / f"seed{k}" / "config.yaml").read_text())["train"]["seed"]
             for k in (1, 2)]
    assert seeds == [7, 8]
    assert not (exp / "model.pt").exists() and (exp / "decode.yaml").is_file()
    for d in ("decode_dev_greedy", "decode_dev_beam", "decode_test_beam"):
        assert (exp / d / "report" / "summary.json").is_file(), d
    bad = subprocess.run(["bash", str(ROOT / "recipes" / "an4" / "run.sh"), "--smoke", "--models",
                          "0"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "--models must be a positive integer" in bad.stderr
