"""The shape of the code (issue 13), checked so it cannot silently decay.

- The import rule (the layer table below, stated in docs/architecture.md): a module imports
  only its own layer or lower ones; decoders do not import the scorer; only the CLI layer
  imports argparse or data_prep. Checked on the syntax tree (``ast``), so comments and docstrings
  do not count, while imports inside functions, under ``if TYPE_CHECKING:``, relative imports
  and ``importlib.import_module("...")`` with a literal name do.
- No tokenizer-kind string switch outside the tokenizer module: the issue's check
  ``grep -rn "kind ==" asr/ | grep -v tokenizer`` literally, except that only the file's path is
  exempted by "tokenizer" (grep -v would also pass a line that merely mentions a tokenizer).
- No file in asr/ over 400 lines; no Python fed on stdin (heredocs) in recipes/; asr/metrics.py
  is gone (one counter: asr/scoring).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ASR = REPO / "asr"

# --- the import rule ---------------------------------------------------------------------------
# docs/architecture.md states the same table. Layers, lowest first: a module of asr/ may import
# asr modules of its own layer or of a lower one, never of a higher one. A path ending in "/"
# means every .py file below that folder.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("foundation", ("asr/errors.py", "asr/fileio.py", "asr/text.py", "asr/interrupt.py")),
    ("audio, features, tokens, model, config", (
        "asr/audio.py", "asr/segment.py", "asr/features.py", "asr/tokenizer.py",
        "asr/manifest.py", "asr/model.py", "asr/onnx_runtime.py", "asr/config.py",
        "asr/checkpoint.py", "asr/logs.py", "asr/data.py", "asr/distributed.py",
        "asr/stream_features.py", "asr/corpus.py", "asr/shards.py", "asr/shard_batches.py",
        "asr/vad.py")),
    ("decoders, scorer, LMs, chunking, rendering", (
        "asr/decode/", "asr/scoring/", "asr/lm/", "asr/chunks.py", "asr/subtitles.py")),
    ("pipeline: forward path, evaluation, tuning, transcription, training", (
        "asr/inference.py", "asr/onnx_export.py", "asr/tune.py", "asr/evaluate.py",
        "asr/transcribe.py", "asr/stream.py", "asr/train_parts.py", "asr/train_shards.py",
        "asr/train.py", "asr/combine.py", "asr/adapt.py")),
    ("front door", ("asr/cli/", "asr/__init__.py", "asr/__main__.py")),
]
CLI_LAYER = ("asr/cli/",)

# Rules besides the layers: (files, except, forbidden imports, why).
EXTRA_RULES: list[tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], str]] = [
    (("asr/",), CLI_LAYER, ("argparse",), "only the CLI layer parses arguments"),
    (("asr/",), CLI_LAYER, ("data_prep",), "manifests are the only interface to data_prep"),
    (("asr/decode/",), (), ("asr.scoring", "asr.lm"), "decoders take log-probs, nothing else"),
]


def _sources() -> list[Path]:
    return sorted(p for p in ASR.rglob("*.py") if "__pycache__" not in p.parts)


def _rel(p: Path, root: Path = REPO) -> str:
    return p.relative_to(root).as_posix()


def _covers(patterns: tuple[str, ...], rel: str) -> bool:
    return any(rel.startswith(pat) if pat.endswith("/") else rel == pat for pat in patterns)


def _module_name(rel: str) -> tuple[str, bool]:
    """``asr/decode/beam.py`` -> ("asr.decode.beam", False); a package's __init__ -> (its
    name, True)."""
    parts = rel[:-3].split("/")
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def imports(path: Path, root: Path = REPO) -> list[tuple[int, str]]:
    """Every module ``path`` imports, as (line, absolute dotted name). ``from X import a`` yields
    X and X.a (a may be a submodule: ``from asr import cli``); relative imports are resolved
    against the file's package (``root`` holds the asr/ folder)."""
    rel = _rel(path, root)
    module, is_package = _module_name(rel)
    package = module if is_package else module.rpartition(".")[0]
    out: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=rel)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # "from ..x import y": up level - 1 packages from this one
                parts = package.split(".")
                assert node.level <= len(parts), \
                    f"{rel}:{node.lineno}: relative import above the top-level package"
                base = ".".join(parts[:len(parts) - node.level + 1]
                                + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            if node.module:
                out.append((node.lineno, base))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names if a.name != "*"]
        elif isinstance(node, ast.Call) and node.args \
                and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name in ("import_module", "__import__"):
                out.append((node.lineno, node.args[0].value))
    return out


def _layer(rel: str) -> int | None:
    return next((i for i, (_, pats) in enumerate(LAYERS) if _covers(pats, rel)), None)


def _module_file(name: str) -> str | None:
    """The asr/ file of a dotted module name (``asr.decode.beam`` -> asr/decode/beam.py), or
    None when it is not a module of asr/ (``asr.decode.beam.BeamDecoder`` resolves to its module)."""
    parts = name.split(".")
    while parts and parts[0] == "asr":
        for rel in ("/".join(parts) + ".py", "/".join(parts) + "/__init__.py"):
            if (REPO / rel).is_file():
                return rel
        parts = parts[:-1]
    return None


def test_every_module_has_a_layer():
    rels = [_rel(p) for p in _sources()]
    assert "asr/model.py" in rels and len(rels) > 20
    missing = [r for r in rels if _layer(r) is None]
    assert not missing, f"modules without a layer in LAYERS: {missing}"
    for _, pats in LAYERS:
        for pat in pats:
            assert (REPO / pat).exists(), f"{pat} (named in LAYERS) does not exist"


def test_resolves_relative_and_from_imports(tmp_path):
    """Guard for :func:`imports`: relative and ``from`` forms resolve to the absolute module."""
    pkg = tmp_path / "asr" / "decode"
    pkg.mkdir(parents=True)
    (pkg / "x.py").write_text("from .. import cli\nfrom ..train import fit\nfrom . import beam\n"
                              "def f():\n    import argparse\n"
                              "# import asr.transcribe\n'''import asr.tune'''\n")
    found = imports(pkg / "x.py", root=tmp_path)
    assert (5, "argparse") in found  # inside a function, with its line
    names = {n for _, n in found}
    assert {"asr.cli", "asr.train", "asr.train.fit", "asr.decode.beam", "argparse"} <= names
    assert not {n for n in names if "transcribe" in n or "tune" in n}  # comments, docstrings


def test_import_rule():
    bad = []
    for path in _sources():
        rel = _rel(path)
        own = _layer(rel)
        for line, name in imports(path):
            target = _module_file(name)
            if target is not None and own is not None and (_layer(target) or 0) > own:
                bad.append(f"{rel}:{line}: imports {name}, a higher layer "
                           f"({LAYERS[_layer(target)][0]})")
            for files, exempt, forbidden, why in EXTRA_RULES:
                if _covers(files, rel) and not _covers(exempt, rel) and any(
                        name == f or name.startswith(f + ".") for f in forbidden):
                    bad.append(f"{rel}:{line}: imports {name} ({why})")
    bad = list(dict.fromkeys(bad))
    assert not bad, "import rule broken (docs/architecture.md):\n" + "\n".join(bad)


# --- no tokenizer-kind string switch -----------------------------------------------------------

def test_no_kind_string_switch_outside_tokenizer():
    """``grep -rn "kind ==" asr/ | grep -v tokenizer`` prints nothing: every line of every
    file under asr/ (comments too; not __pycache__) whose path does not contain "tokenizer"."""
    hits = []
    for p in sorted(ASR.rglob("*")):
        rel = _rel(p)
        if not p.is_file() or "__pycache__" in p.parts or "tokenizer" in rel:
            continue
        text = p.read_bytes().decode("utf-8", errors="replace")
        hits += [f"{rel}:{n}: {line.strip()}" for n, line in enumerate(text.splitlines(), 1)
                 if "kind ==" in line]
    assert not hits, "'kind ==' outside the tokenizer module:\n" + "\n".join(hits)


# --- no file over 400 lines ----------------------------------------------------------------------

MAX_LINES = 400


def test_no_file_over_400_lines():
    long = [f"{_rel(p)}: {n} lines" for p in sorted(ASR.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts
            and (n := len(p.read_bytes().splitlines())) > MAX_LINES]
    assert not long, f"files in asr/ over {MAX_LINES} lines:\n" + "\n".join(long)


# --- no Python heredoc in recipes ----------------------------------------------------------------

# A command that runs Python: python, python3, python3.11, .venv/bin/python, "$py", ${PYTHON}...
_PYTHON = r"""(?:\bpython[0-9.]*\b|["']?\$\{?(?:py|PY|python|PYTHON)\w*\}?["']?)"""
_HEREDOC = re.compile(r"<<(?!<)-?\s*['\"]?[A-Za-z_]\w*")      # << EOF, <<'EOF', <<-"PY"; not <<<
_PY_STDIN = re.compile(_PYTHON + r"\s+-(?:\s|$)")              # python - ARGS (script on stdin)
_PY_LINE = re.compile(_PYTHON)


def _shell_scripts() -> list[Path]:
    return sorted(p for p in (REPO / "recipes").rglob("*") if p.is_file() and (
        p.suffix in (".sh", ".bash") or p.read_bytes()[:2] == b"#!"))


def test_shell_scripts_found():
    names = {_rel(p) for p in _shell_scripts()}
    assert {"recipes/common.sh", "recipes/an4/run.sh"} <= names


def _feeds_python(line: str) -> bool:
    return not line.lstrip().startswith("#") and bool(
        _PY_STDIN.search(line) or (_HEREDOC.search(line) and _PY_LINE.search(line)))


def test_heredoc_pattern():
    """Guard for the recipe check: what counts as Python on stdin, and what does not."""
    for line in ['"$py" - "$@" <<\'EOF\'', "python3 - <<EOF", "$py <<-PY", "${py} - a b",
                 "cat <<'EOF' | .venv/bin/python", '"$PYTHON" - < script.py']:
        assert _feeds_python(line), line
    for line in ['"$py" -m asr.lm build', 'read -r -a list <<< "$subsets"', "cat > f <<EOF",
                 "# python - <<EOF (gone)", '"$asr" train --config "$config"']:
        assert not _feeds_python(line), line


def test_no_python_heredoc_in_recipes():
    hits = [f"{_rel(p)}:{n}: {line.strip()}" for p in _shell_scripts()
            for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1)
            if _feeds_python(line)]
    assert not hits, "Python fed on stdin in recipes/ (make it a library call):\n" + \
        "\n".join(hits)


# --- one counter ---------------------------------------------------------------------------------

def test_metrics_module_is_gone():
    assert not (ASR / "metrics.py").exists(), \
        "asr/metrics.py still exists: WER/CER are counted by asr/scoring alone"
