"""Why a serving figure is empty, read from the records (characterize/serving.py: serving_unavailable): an engine that
reports no scheduling time (a server over HTTP) has no queueing delay, one whose samples carry no running requests no
concurrency, and each says so instead of "no finished request" (issue 27: an endpoint beside in-process engines)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from profiler.characterize.serving import NO_FINISHED, serving_unavailable

NAN = np.nan


def test_each_empty_figure_names_its_own_cause():
    over_http = pd.DataFrame({"queue_s": [NAN, NAN]})
    blind = pd.DataFrame({"running": [None, None], "kv_bytes_total": [None, None]}, dtype=float)
    out = serving_unavailable(over_http, blind)
    assert out["queue_s"].startswith("the engine reported no scheduling time for any request (scheduled_ns)")
    assert out["concurrency"].startswith("the engine reported no running requests in any sample")
    assert out["kv_occupancy_max"] == "the engine reports no KV cache capacity (nor a usage fraction)"


def test_an_engine_that_reports_everything_leaves_nothing_unavailable_and_an_empty_run_says_why():
    seen = pd.DataFrame({"running": [1.0, 2.0], "kv_bytes_total": [1024.0, 1024.0]})
    assert serving_unavailable(pd.DataFrame({"queue_s": [0.001, NAN]}), seen) == {}  # one request scheduled is enough
    out = serving_unavailable(pd.DataFrame({"queue_s": []}, dtype=float), None)
    assert out == {
        "queue_s": NO_FINISHED,
        "concurrency": "no engine sample in the measured window",
        "kv_occupancy_max": "the engine reports no KV cache capacity (nor a usage fraction)",
    }


def test_a_servers_kv_usage_fraction_is_a_kv_figure_without_bytes():
    """A server's Prometheus gauge (vLLM kv_cache_usage_perc, a fraction) gives kv_occupancy_max with no bytes."""
    scraped = pd.DataFrame({"running": [1.0, 2.0], "kv_bytes_total": [None, None], "kv_usage": [0.1, 0.2]}, dtype=float)
    assert serving_unavailable(pd.DataFrame({"queue_s": [NAN]}), scraped) == {"queue_s": serving_unavailable(pd.DataFrame({"queue_s": [NAN]}), None)["queue_s"]}
