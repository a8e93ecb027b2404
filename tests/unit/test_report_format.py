"""profiler/format.py's additions for the report: facts by their key's unit, intervals in the median's unit."""

from __future__ import annotations

import pytest

from profiler.format import DASH, by_key, duration_ci


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("peak_rss_bytes", 981721088, "936 MiB"),
        ("setup_s", 2.729431293999994, "2.73 s"),
        ("period_s", 0.02, "20.0 ms"),
        ("control_hz", 50.0, "50.0 Hz"),
        ("average_power_w", 300.0, "300 W"),
        ("energy_j", 1234.5, "1.23 kJ"),
        ("param_count", 44569088, "44.6 M"),
        ("layers", 4, "4"),
        ("span_total", 1234567, "1,234,567"),
        ("state_bytes_per_token_per_seq", 8192, "8.00 KiB per token per seq"),
        ("image_size", [128, 128], "128 × 128"),
        ("latent_shape", [1, 4, 16, 16], "1 × 4 × 16 × 16"),
        ("param_count_by_part", {"vision": 150720, "expert": 99136}, "vision 151 k, expert 99.1 k"),
        ("kernel_path_fused", False, "no"),
        ("weights", "random", "random"),
        ("head", None, DASH),
        ("ratio", 2.729431293999994, "2.73"),
        ("util_percent", 12.3456, "12.3%"),
        ("idle_fraction", 0.25, "25.0%"),
    ],
)
def test_by_key_formats_by_the_unit_in_the_name(key, value, text):
    assert by_key(key, value) == text


def test_duration_ci_reads_in_the_medians_unit():
    assert duration_ci(0.0123, 0.0121, 0.0125) == "12.3 ms [12.1, 12.5]"
    assert duration_ci(0.000999, 0.000990, 0.00101) == "999 µs [990, 1,010]"
    assert duration_ci(2.5, 2.4, 2.6) == "2.50 s [2.40, 2.60]"
    assert duration_ci(None, 1.0, 2.0) == DASH
    assert duration_ci(0.0123, None, None) == "12.3 ms"
