"""Operator mix: categories, attribution to every enclosing phase, and the exported trace."""

from __future__ import annotations

import gzip
import json

import torch

from profiler.measure.opmix import HOST, categorize, trace_iteration


class TwoPhases:
    """A known mix: one phase of matmuls, one of convolutions."""

    def __init__(self) -> None:
        # large enough that the ops, not the host time between them, dominate the iteration on a busy machine too
        # (at 256 x 256 and 64 x 64 a preempted host stretch made `host/framework` the iteration's largest category once)
        self.w = torch.randn(512, 512)
        self.conv = torch.nn.Conv2d(8, 8, 3)
        self.x = torch.randn(1, 8, 128, 128)

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
    # the iteration encloses both phases: its mix holds their ops (inclusive), not only its own glue
    whole = phases["iteration"]["time_us_by_category"]
    assert whole["matmul/GEMM"] >= phases["gemm"]["time_us_by_category"]["matmul/GEMM"] * 0.999
    assert whole["convolution"] >= phases["conv"]["time_us_by_category"]["convolution"] * 0.999
    assert phases["iteration"]["dominant_category"] in ("matmul/GEMM", "convolution")
    assert categorize("aten::gru_cell") == categorize("aten::lstm") == "scan/recurrence"
    trace = json.loads(gzip.decompress((tmp_path / result["trace_file"]).read_bytes()))
    assert trace["distributedInfo"]["rank"] == 0
    assert any(e.get("name") == "phase::gemm" for e in trace["traceEvents"])


def test_cuda_trace_without_kernels_is_unavailable_not_idle_mocked_no_gpu_here():
    """The GPU boundary, mocked (no GPU on this machine): a CUDA trace in which CUPTI recorded no
    kernel must not read as a 100% idle device."""
    from profiler.measure.opmix import no_kernels

    mix = {
        "decode_step": {
            "kernel_launches": 0,
            "device_idle_fraction": 1.0,
            "time_us_by_category": {"matmul/GEMM": 0.0},
            "share_by_category": {},
            "dominant_category": None,
            "wall_us": 900.0,
        }
    }
    why = no_kernels(mix)
    assert why and "CUPTI" in why
    assert mix["decode_step"]["device_idle_fraction"] is None and mix["decode_step"]["kernel_launches"] is None
    recorded = {"decode_step": {"kernel_launches": 12, "device_idle_fraction": 0.4}}
    assert no_kernels(recorded) is None and recorded["decode_step"]["device_idle_fraction"] == 0.4
