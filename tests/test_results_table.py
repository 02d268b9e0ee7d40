"""recipes/results_table.py: the RESULTS.md tables the recipes publish (a script, not in ``asr``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("results_table", ROOT / "recipes" / "results_table.py")
results_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(results_table)


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


def test_script_runs_from_anywhere(tmp_path):
    """common.sh runs it as ``python recipes/results_table.py``, from any folder."""
    p = _summary(tmp_path / "decode_test_greedy", 0.25, "greedy")
    md = tmp_path / "RESULTS.md"
    proc = subprocess.run([sys.executable, str(ROOT / "recipes" / "results_table.py"), str(p),
                           "--title", "T", "--command", "bash run.sh", "--update", str(md), "--key", "k"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    text = md.read_text()
    assert "| test | greedy | 10 | 25.00 |" in text and "- commit: " in text
    if (ROOT / ".git").exists():  # the repository is found from the script's own path
        assert "- commit: unknown" not in text
