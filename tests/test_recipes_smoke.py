"""Every recipe end to end on its fake miniature corpus (``run.sh --smoke``), and the results table.

The recipes run two at a time (they are mostly process start-up and I/O) into temporary folders;
each test then checks its recipe's exit status, score summaries and results table, and that the
recipe's own RESULTS.md was left alone.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from asr.scoring import results_table

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
HAVE_BEAM = importlib.util.find_spec("asr.decode.tune") is not None


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
    decoders = ["greedy", "beam"] if HAVE_BEAM else ["greedy"]
    for name in RECIPES[recipe]:
        for dec in decoders:
            summary = exp / f"{name}_{dec}" / "report" / "summary.json"
            assert summary.is_file(), f"missing {summary}"
            s = json.loads(summary.read_text())
            assert s["n_utterances"] > 0 and s["wer"] >= 0
    table = (exp / "RESULTS.md").read_text()
    assert "<!-- results:" in table and "| greedy |" in table and "- machine: nproc" in table
    # --smoke writes its table into the exp dir, never into the recipe's RESULTS.md
    assert (ROOT / "recipes" / recipe / "RESULTS.md").read_text() == results_before


def _summary(d: Path, wer: float, decoder) -> Path:
    (d / "report").mkdir(parents=True)
    (d / "wer.json").write_text(json.dumps({"decoder": decoder}))
    p = d / "report" / "summary.json"
    p.write_text(json.dumps({"wer": wer, "cer": wer / 2, "ser": 0.5, "n_utterances": 10,
                             "wer_ci": {"low": wer - 0.01, "high": wer + 0.01}}))
    return p


def test_results_table_mean_and_refresh(tmp_path):
    beam = {"type": "beam", "beam_size": 50, "lexicon": "lex.txt", "lm": "lm.arpa", "lm_weight": 0.5,
            "word_score": 1.0}
    paths = [_summary(tmp_path / "fold_a" / "decode_a_greedy", 0.10, "greedy"),
             _summary(tmp_path / "fold_b" / "decode_b_greedy", 0.20, "greedy"),
             _summary(tmp_path / "fold_a" / "decode_a_beam", 0.04, beam),
             _summary(tmp_path / "fold_b" / "decode_b_beam", 0.06, {**beam, "lm_weight": 1.0})]
    timing = tmp_path / "timing.tsv"
    timing.write_text("train\t100\tfold_a train\ntrain\t50\tfold_a train\ntrain\t30\tfold_b train\n"
                      "decode\t5\tfold_a a greedy\n")
    block = results_table.render([str(p) for p in paths], "T", "bash run.sh", timing=str(timing), mean=True)
    rows = [line for line in block.splitlines() if line.startswith("| ")]
    assert rows[1].startswith("| a | greedy | 10 | 10.00 | 9.00-11.00 | 5.00 | 50.00 |")
    assert "beam 50 (lexicon, LM weight 0.5, word score 1)" in rows[3]
    # mean rows per decoder kind, although the two folds tuned different LM weights
    assert rows[-2].startswith("| **mean of 2** | greedy | 20 | **15.00** |")
    assert rows[-1].startswith("| **mean of 2** | beam | 20 | **5.00** |")
    assert "wall time: 85 s (train 80 s, decode 5 s)" in block  # a rerun's line replaces the first
    assert "- command: `bash run.sh`" in block

    md = tmp_path / "RESULTS.md"
    md.write_text("# Results\n\nintro\n")
    results_table.update(md, "k1", "### one\n")
    results_table.update(md, "k2", "### two\n")
    results_table.update(md, "k1", "### one, again\n")
    text = md.read_text()
    assert text.startswith("# Results\n\nintro\n\n<!-- results:k1 -->\n### one, again\n<!-- /results:k1 -->")
    assert text.count("results:k1 -->") == 2 and "### two" in text and "### one\n" not in text
