"""The documents name the tests and scripts that back their claims: each reference must point to
something that exists.

Checked in README.md, docs/*.md and recipes/*/RESULTS.md:

- ``tests/...`` paths (a file, or a folder ending in ``/``), and bare ``test_*.py`` names, which
  docs/robustness.md's tables use for files in ``tests/robustness/`` (or ``tests/``);
- ``FILE::test_name`` (also ``FILE::Class::test_name`` and ``FILE::test_name[case]``): the file
  defines that test function;
- a test function named on its own in backticks (`` `test_name` ``): some file under tests/
  defines it;
- ``scripts/NAME.py`` paths, and the ``--options`` written after a script in the same backtick
  span: the script exists and its source spells each option.
"""

from __future__ import annotations

import ast
import re
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TESTS = ROOT / "tests"

TEST_REF = re.compile(r"(?<![\w/.-])((?:tests/)?(?:[\w-]+/)*test_\w+\.py)((?:::[\w\[\]., -]+?)*)"
                      r"(?=[`\s),;:]|$)")
TEST_DIR = re.compile(r"(?<![\w/.-])(tests/(?:[\w-]+/)+)(?![\w.])")
BARE_FUNC = re.compile(r"`(test_\w+)`")
SCRIPT_REF = re.compile(r"(?<![\w/.-])((?:scripts/)?([\w-]+)\.py)\b")
SPAN = re.compile(r"`([^`\n]+)`")
OPTION = re.compile(r"(?<![\w-])(--[a-z][\w-]*)")


def documents() -> list[Path]:
    docs = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
            *sorted((ROOT / "recipes").glob("*/RESULTS.md"))]
    return [d for d in docs if d.is_file()]


@lru_cache(maxsize=None)
def functions_in(path: Path) -> frozenset[str]:
    """Names of the test functions in a file: ``test_x`` and ``Class::test_x``."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    names.add(f"{node.name}::{item.name}")
    return frozenset(n for n in names if n.rsplit("::", 1)[-1].startswith("test"))


def functions_under_tests() -> set[str]:
    return {n.rsplit("::", 1)[-1] for p in TESTS.rglob("test_*.py") for n in functions_in(p)}


def resolve_test_file(ref: str) -> Path | None:
    """``tests/x/test_y.py`` relative to the checkout; a bare ``test_y.py`` (docs/robustness.md's
    tables) in tests/robustness/ or tests/."""
    if ref.startswith("tests/"):
        p = ROOT / ref
        return p if p.is_file() else None
    for base in (TESTS / "robustness", TESTS):
        if (base / ref).is_file():
            return base / ref
    return None


def broken_references(text: str) -> list[str]:
    """Every reference in ``text`` that points to nothing, as ``"REF: why"``."""
    broken = []
    defined_anywhere: set[str] | None = None
    for m in TEST_REF.finditer(text):
        ref, funcs = m.group(1), [f for f in m.group(2).split("::") if f]
        path = resolve_test_file(ref)
        if path is None:
            broken.append(f"{ref}: no such test file")
            continue
        if funcs:
            name = "::".join(f.split("[", 1)[0].strip() for f in funcs)
            if name not in functions_in(path):
                broken.append(f"{ref}::{name}: {path.relative_to(ROOT)} defines no such test")
    for m in TEST_DIR.finditer(text):
        if not (ROOT / m.group(1)).is_dir():
            broken.append(f"{m.group(1)}: no such folder")
    for m in BARE_FUNC.finditer(text):
        if defined_anywhere is None:
            defined_anywhere = functions_under_tests()
        if m.group(1) not in defined_anywhere:
            broken.append(f"{m.group(1)}: no test of that name under tests/")
    for span in SPAN.findall(text):
        for m in SCRIPT_REF.finditer(span):
            ref, name = m.group(1), m.group(2)
            script = ROOT / "scripts" / f"{name}.py"
            if not ref.startswith("scripts/") and not script.is_file():
                continue  # a module or test file, not a script (checked above where it is one)
            if not script.is_file():
                broken.append(f"{ref}: no such script")
                continue
            source = script.read_text(encoding="utf-8")
            for opt in OPTION.findall(span[m.end():]):
                if f'"{opt}"' not in source and f"'{opt}'" not in source:
                    broken.append(f"{ref} {opt}: the script has no such option")
    return broken


@pytest.mark.parametrize("doc", documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_reference_in_the_docs_points_to_something_that_exists(doc):
    broken = broken_references(doc.read_text(encoding="utf-8"))
    assert not broken, f"{doc.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_docs_reference_tests_and_scripts():
    """The check above is not vacuous: the references it must see are found."""
    text = "\n".join(d.read_text(encoding="utf-8") for d in documents())
    refs = {m.group(1) for m in TEST_REF.finditer(text)}
    assert {"tests/test_model.py", "tests/robustness/test_long_audio.py",
            "test_bad_audio.py"} <= refs, refs
    assert any("::" in m.group(0) for m in TEST_REF.finditer(text))
    assert {m.group(1) for s in SPAN.findall(text) for m in SCRIPT_REF.finditer(s)} >= {
        "scripts/bench_rnn.py", "scripts/bench_longform.py", "scripts/bench_multiutt.py"}


def test_the_checker_reports_each_kind_of_broken_reference():
    text = """
    `tests/test_model.py` and `test_bad_audio.py::test_train_strict_fails_on_bad_audio`, fine;
    `tests/test_nothing_here.py`, `tests/test_model.py::test_no_such_function`,
    `test_bad_audio.py::test_gone[case]`, `test_no_such_test_anywhere`, `tests/nowhere/`,
    `python scripts/bench_rnn.py --repeats 3 --no-such-option`, `scripts/bench_gone.py`
    """
    broken = broken_references(text)
    for ref in ("tests/test_nothing_here.py", "tests/test_model.py::test_no_such_function",
                "test_bad_audio.py::test_gone", "test_no_such_test_anywhere", "tests/nowhere/",
                "scripts/bench_rnn.py --no-such-option", "scripts/bench_gone.py"):
        assert any(b.startswith(ref + ":") for b in broken), (ref, broken)
    assert len(broken) == 7, broken
