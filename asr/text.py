"""Text normalisation: the one normaliser for training targets, decoding references and scoring.

The pipeline applies the experiment's ``text`` settings (default: NFKC, upper case, punctuation
stripped) to manifest texts before tokenising, training and scoring; ``asr score`` applies its own
options (default: only whitespace collapsed) through the same class.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

CASES = ("upper", "lower", "keep")
_APOSTROPHES = "'\u2019"


@dataclass
class TextNorm:
    """Normalisation applied to a text (references and hypotheses alike).

    Whitespace is always collapsed (runs become one space, ends stripped).

    Attributes:
        case: "upper", "lower" or "keep".
        strip_punct: replace punctuation and symbols (Unicode categories P* and S*) by spaces,
            keeping an apostrophe between two letters ("don't" stays one word).
        nfkc: apply Unicode NFKC first (ligatures and full-width forms become plain letters).

    Example:
        >>> TextNorm()("Hello, world! It's fine.")
        "HELLO WORLD IT'S FINE"
        >>> TextNorm(case="keep", strip_punct=False, nfkc=False)("  a,  b ")
        'a, b'
    """

    case: str = "upper"
    strip_punct: bool = True
    nfkc: bool = True

    def __post_init__(self) -> None:
        if self.case not in CASES:
            raise ValueError(f"text.case must be upper, lower or keep, got '{self.case}'")

    def __call__(self, text: str) -> str:
        if self.nfkc:
            text = unicodedata.normalize("NFKC", text)
        if self.case == "upper":
            text = text.upper()
        elif self.case == "lower":
            text = text.lower()
        if self.strip_punct:
            text = _strip_punct(text)
        return " ".join(text.split())

    def describe(self) -> str:
        """One line for reports, e.g. ``keep-case, punctuation kept, whitespace collapsed``."""
        case = {"upper": "uppercased", "lower": "lowercased", "keep": "keep-case"}[self.case]
        punct = "punctuation stripped" if self.strip_punct else "punctuation kept"
        return f"{'NFKC, ' if self.nfkc else ''}{case}, {punct}, whitespace collapsed"

    def to_dict(self) -> dict[str, object]:
        return {"case": self.case, "lowercase": self.case == "lower",
                "strip_punct": self.strip_punct, "nfkc": self.nfkc, "whitespace": "collapsed",
                "cer_counts_spaces": True, "description": self.describe()}


SCORING_DEFAULT = TextNorm(case="keep", strip_punct=False, nfkc=False)  # only whitespace


def _strip_punct(text: str) -> str:
    out = []
    for i, ch in enumerate(text):
        if unicodedata.category(ch)[0] in "PS":
            inner = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
            out.append(ch if ch in _APOSTROPHES and inner else " ")
        else:
            out.append(ch)
    return "".join(out)
