"""Every recipe end to end on its fake miniature corpus (``run.sh --smoke``).

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
HAVE_BEAM = importlib.util.find_spec("asr.tune") is not None


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
