"""Operator mix: categories, attribution to the innermost phase, and the exported trace."""

from __future__ import annotations

import gzip
import json

import torch

from profiler.opmix import HOST, categorize, trace_iteration


class TwoPhases:
    """A known mix: one phase of matmuls, one of convolutions."""

    def __init__(self) -> None:
        self.w = torch.randn(256, 256)
        self.conv = torch.nn.Conv2d(8, 8, 3)
        self.x = torch.randn(1, 8, 64, 64)

    def run_once(self, mark) -> None:
        with mark("gemm"):
            h = self.w
            for _ in range(20):
                h = torch.nn.functional.linear(h, self.w)
        with mark("conv"):
            with torch.no_grad():
                for _ in range(10):
                    self.conv(self.x)


def test_categories():
    assert categorize("aten::linear") == "matmul/GEMM"
    assert categorize("aten::_scaled_dot_product_flash_attention_for_cpu") == "attention"
    assert categorize("aten::conv2d") == "convolution"
    assert categorize("aten::cat") == "memory copy"
    assert categorize("aten::silu") == "normalization/elementwise"
    assert categorize("aten::foo") == "other"


def test_trace_attributes_ops_to_phases(tmp_path):
    result = trace_iteration(TwoPhases(), "cpu", tmp_path)
    phases = result["phases"]
    assert phases["gemm"]["dominant_category"] == "matmul/GEMM"
    assert phases["conv"]["dominant_category"] == "convolution"
    assert "convolution" not in phases["gemm"]["share_by_category"]
    assert abs(sum(phases["gemm"]["share_by_category"].values()) - 1) < 1e-9
    assert HOST in phases["gemm"]["time_us_by_category"]
    trace = json.loads(gzip.decompress((tmp_path / result["trace_file"]).read_bytes()))
    assert trace["distributedInfo"]["rank"] == 0
    assert any(e.get("name") == "phase::gemm" for e in trace["traceEvents"])
