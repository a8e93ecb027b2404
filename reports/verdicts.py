"""How a verdict of the differences looks on the page: a symbol, a word and a colour class.

Colours say whether the difference is better or worse for the workload, by the characteristic's
`better` direction (reports/characteristics.py): green better, red worse, blue a difference
that is neither (a category, a presence). No difference and same are muted; verdicts that claim
nothing (unavailable, not comparable) are a dot. "inconclusive" (a verdict measurement
conditions may give) is neutral grey.
"""

from __future__ import annotations

from .characteristics import Better
from .differences import Verdict

INCONCLUSIVE = "inconclusive"
SYMBOLS = {
    Verdict.HIGHER.value: "↑",
    Verdict.LOWER.value: "↓",
    Verdict.DIFFERS.value: "≠",
    Verdict.PRESENT.value: "+",
    Verdict.NO_DIFFERENCE.value: "=",
    Verdict.SAME.value: "=",
    INCONCLUSIVE: "?",
}


def is_finding(verdict: str) -> bool:
    try:
        return Verdict(verdict).is_finding
    except ValueError:
        return False


def symbol(verdict: str) -> str:
    return SYMBOLS.get(verdict, "·")


def css_class(verdict: str, better: str) -> str:
    """v-good, v-bad, v-neutral (a finding); v-same (no difference, same); v-inconclusive; v-na."""
    if verdict == INCONCLUSIVE:
        return "v-inconclusive"
    if verdict in (Verdict.NO_DIFFERENCE.value, Verdict.SAME.value):
        return "v-same"
    if not is_finding(verdict):
        return "v-na"
    if verdict in (Verdict.HIGHER.value, Verdict.LOWER.value) and better in (Better.HIGHER.value, Better.LOWER.value):
        return "v-good" if verdict == better else "v-bad"  # both enums spell the directions "higher" and "lower"
    return "v-neutral"
