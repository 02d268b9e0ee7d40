"""Model files cannot run code, and no input reaches a shell: the library never unpickles
(torch.load only with weights_only=True, no pickle/marshal, no numpy allow_pickle, no unsafe
YAML) and never runs a shell (no os.system, no shell=True)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted(p for d in ("asr", "data_prep") for p in (REPO / d).rglob("*.py"))

FORBIDDEN_TEXT = re.compile(r"weights_only\s*=\s*False|pickle\.loads?\b|shell\s*=\s*True|"
                            r"os\.system\b|os\.popen\b|allow_pickle\s*=\s*True|yaml\.load\(|"
                            r"yaml\.unsafe_load|marshal\.loads?\b|Unpickler\b")


def test_sources_found():
    assert len(SOURCES) > 20 and REPO / "asr" / "checkpoint.py" in SOURCES


def test_no_forbidden_text():
    hits = [f"{p.relative_to(REPO)}:{n}: {line.strip()}" for p in SOURCES
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if FORBIDDEN_TEXT.search(line)]
    assert not hits, "\n".join(hits)


def _name(node: ast.AST) -> str:
    """Dotted name of a call's target (``torch.load``, ``subprocess.run``...)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def test_every_torch_load_is_weights_only():
    """Also catches ``torch.load(p)`` (no keyword), whose default differs across versions."""
    bad, seen = [], 0
    for p in SOURCES:
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = _name(node.func)
            if name == "torch.load":
                seen += 1
                kw = {k.arg: k.value for k in node.keywords}
                ok = isinstance(kw.get("weights_only"), ast.Constant) and \
                    kw["weights_only"].value is True
                if not ok:
                    bad.append(f"{p.relative_to(REPO)}:{node.lineno}")
            builtin = isinstance(node.func, ast.Name) and name in ("eval", "exec")
            if builtin or name.startswith("pickle.") or name == "os.system":
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}: {name}")
            if name.startswith("subprocess.") and any(k.arg == "shell" for k in node.keywords):
                bad.append(f"{p.relative_to(REPO)}:{node.lineno}: {name}(shell=...)")
    assert seen >= 1  # asr/checkpoint.py:safe_load
    assert not bad, bad
