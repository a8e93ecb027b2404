"""Numbers for people: every value with its unit, at three significant figures, scaled to a
readable prefix (12.3 ms, 845 µs, 935 MiB, 1.23 GFLOP/s, 12.5%). Used by the report, the
differences' readings and the terminal, so a number reads the same everywhere.

Storage stays SI (seconds, bytes, FLOP/s, fractions); only display converts.
"""

from __future__ import annotations

import math
from typing import Any, TypeGuard

DASH = "—"
SHARE_UNITS = ("of peak", "of bandwidth", "of ticks", "of phase time", "of iteration")


def _finite(value: Any) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _round3(value: float) -> float:
    """`value` at three significant figures, so the unit is chosen for the printed number (999.6 µs is 1.00 ms)."""
    return float(f"{value:.2e}")


def sig(value: float, digits: int = 3) -> str:
    """`value` at `digits` significant figures, without exponent notation for everyday magnitudes."""
    if value == 0:
        return "0"
    if not math.isfinite(value):  # a damaged run's number: shown as it is, never an OverflowError
        return str(value)
    text = f"{value:.{digits - 1}e}"
    value = float(text)  # round first: 0.99957 is 1.00, not 1.000
    if not math.isfinite(value):  # 1.7977e308 rounds up past the largest float
        return text
    magnitude = math.floor(math.log10(abs(value)))
    if -4 <= magnitude < 6:
        decimals = max(0, digits - 1 - magnitude)
        return f"{value:,.{decimals}f}"
    return f"{value:.{digits - 1}e}"


def duration(seconds: float | None) -> str:
    """12.3 ms, 845 µs, 2.73 s, 3.2 min."""
    if not _finite(seconds):
        return DASH
    seconds = _round3(seconds)
    a = abs(seconds)
    if a == 0:
        return "0 s"
    if a < 1e-6:
        return f"{sig(seconds * 1e9)} ns"
    if a < 1e-3:
        return f"{sig(seconds * 1e6)} µs"
    if a < 1:
        return f"{sig(seconds * 1e3)} ms"
    if a < 600:
        return f"{sig(seconds)} s"
    return f"{sig(seconds / 60)} min"


def nbytes(value: float | None) -> str:
    """IEC prefixes: 935 MiB, 8 KiB, 512 B."""
    if not _finite(value):
        return DASH
    a = abs(value) * 1.0005  # 1023.9 B prints as 1.00 KiB, not 1,020 B
    for scale, prefix in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if a >= scale:
            return f"{sig(value / scale)} {prefix}"
    return f"{sig(value)} B"


def si(value: float | None, unit: str) -> str:
    """SI prefixes: 1.23 GFLOP/s, 45.6 MFLOP."""
    if not _finite(value):
        return DASH
    value = _round3(value)
    a = abs(value)
    for scale, prefix in ((1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{sig(value / scale)} {prefix}{unit}".strip()
    return f"{sig(value)} {unit}".strip()


def percent(fraction: float | None) -> str:
    if not _finite(fraction):
        return DASH
    return f"{sig(fraction * 100)}%" if abs(fraction) >= 0.001 or fraction == 0 else f"{fraction * 100:.2g}%"


def ratio(value: float | None, low: float | None = None, high: float | None = None) -> str:
    """1.74× [1.69, 1.80]; ≈0× for a ratio that is zero to printing precision."""
    if not _finite(value):
        return DASH
    if abs(value) < 1e-6:
        return "≈0×"
    text = f"{sig(value)}×"
    if _finite(low) and _finite(high) and low != high:
        text += f" [{sig(low)}, {sig(high)}]"
    return text


def rate(value: float | None, unit: str) -> str:
    """116 token/s, 0.412 image/s."""
    if not _finite(value):
        return DASH
    return f"{sig(value)} {unit}/s"


def count(value: Any, unit: str = "") -> str:
    if not _finite(value):
        return DASH
    text = f"{int(value):,}" if float(value).is_integer() else sig(float(value))
    return f"{text} {unit}".strip()


def format_value(value: Any, unit: str) -> str:
    """A characteristic's value in its unit (reports/characteristics.py units)."""
    if value is None:
        return DASH
    if isinstance(value, str):
        return value
    if not _finite(value):
        return DASH
    if unit in SHARE_UNITS:
        return percent(value)
    if unit == "s":
        return duration(value)
    if unit.startswith("s/"):
        return f"{duration(value)}/{unit[2:]}"
    if unit.startswith("B/"):
        return f"{nbytes(0.0 if abs(value) < 0.01 else value)}/{unit[2:]}"  # a fitted zero prints as 0
    if unit.startswith("J/"):
        return f"{sig(value)} {unit}"
    if unit.startswith("x"):
        return f"{sig(value)}×{unit[1:]}"
    return f"{sig(value)} {unit}".strip()


# ---------------------------------------------------------------- facts and settings, by their key's unit

SIZE_WORDS = ("shape", "size", "resolution")


def by_key(key: str, value: Any) -> str:
    """A stored fact or setting, formatted by the unit its key names (metrics.md: units in names).

    `peak_rss_bytes` 935 MiB, `setup_s` 2.73 s, `control_hz` 50.0 Hz, `param_count` 44.6 M,
    `state_bytes_per_token_per_seq` 8 KiB per token per seq, `image_size` [128, 128] 128 × 128.
    A dict reads as `key value, ...` with its values formatted by the parent's unit
    (`param_count_by_part`); use it for scalars and short collections only.
    """
    head, _, per = key.partition("_per_")
    head = head.partition("_by_")[0]
    if isinstance(value, dict):
        return ", ".join(f"{k} {by_key(head, v)}" for k, v in value.items()) or DASH
    if isinstance(value, (list, tuple)):
        joiner = " × " if any(w in key for w in SIZE_WORDS) and all(isinstance(v, int) for v in value) else ", "
        return joiner.join(by_key(head, v) for v in value) or DASH
    text = _scalar_by_key(head, value)
    return f"{text} per {per.replace('_per_', ' per ').replace('_', ' ')}" if per and _finite(value) else text


def _scalar_by_key(key: str, value: Any) -> str:
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if not isinstance(value, (int, float)):
        return str(value)
    if not _finite(value):
        return DASH
    units = {"_bytes": nbytes, "_s": duration, "_hz": lambda v: si(v, "Hz"), "_w": lambda v: si(v, "W"), "_j": lambda v: si(v, "J")}
    for suffix, fmt in units.items():
        if key.endswith(suffix) or key == suffix[1:]:
            return fmt(value)
    if key.endswith(("_percent", "_pct")):
        return f"{sig(value)}%"
    if key.endswith(("_fraction", "_share")):
        return percent(value)
    if key.endswith("_count") and abs(value) >= 10_000:
        return si(value, "")
    return count(value)


def duration_ci(value: float | None, low: float | None, high: float | None) -> str:
    """12.3 ms [12.1, 12.5]: the interval in the median's unit, so the two read together."""
    text = duration(value)
    if not (_finite(value) and _finite(low) and _finite(high)) or value == 0:
        return text
    a = abs(value)
    scale = 1e-9 if a < 1e-6 else 1e-6 if a < 1e-3 else 1e-3 if a < 1 else 1.0 if a < 600 else 60.0
    return f"{text} [{sig(low / scale)}, {sig(high / scale)}]"
