"""The definitions section: what every number in the report means (from metrics.md).

Tools in this field disagree mostly because of definitions, so every report carries its own.
"""

from __future__ import annotations

DEFINITIONS: list[tuple[str, str]] = [
    ("Span", "One timed region marked by the workload: host monotonic clock from the start of the region to the moment its output is available on the host (what a user or actuator experiences). On CUDA also the device time of the same region from CUDA events."),
    ("Iteration", "One unit of user-visible work (a batch of generations, an image, an episode). Warmup iterations are stored, tagged, and excluded from every statistic."),
    ("Delivery", "A span that makes output units available (units > 0), e.g. a token for every sequence of the batch."),
    ("E2E", "Iteration start to iteration end (the runner's `iteration` span around run_once)."),
    ("TTFT", "Time to first token (first output unit): iteration start to the end of the first delivery; for LLM decode, prefill plus the first sample (vLLM's definition)."),
    ("TPOT", "Time per output token: (E2E - TTFT) / (deliveries - 1); excludes the first token (vLLM's definition)."),
    ("ITL", "Inter-token latency: gap between consecutive deliveries of one request, per token, never per chunk."),
    ("Output units/s", "Output units delivered in an iteration (all sequences of the batch) divided by its E2E."),
    ("state_bytes", "Bytes of request state alive after each step for the iteration's whole batch, measured from the live tensors (KV cache, SSM state, latent); per sequence = state_bytes / batch size. For a Llama-style KV cache: 2 × layers × kv_heads × head_dim × dtype bytes per token per sequence."),
    ("Position", "Tokens in the context after the step (the cache length)."),
    ("CPU %", "psutil process CPU time over the sampling interval; 100% = one core busy. Sampled from the parent process."),
    ("RSS", "Resident set size of the workload's process, sampled from the parent."),
    ("Kernel-active %", "NVML utilization.gpu: fraction of time one or more kernels ran on the GPU. Not SM occupancy."),
    ("Statistics", "Median, p90, p99, mean, std, IQR over measured samples; a 95% confidence interval for the median by bootstrap (1000 resamples, seeded) or, above 20,000 samples, by order statistics. IQR/median above 10% is flagged as noisy."),
    ("FLOPs", "Counted by torch.utils.flop_counter.FlopCounterMode in one extra untimed iteration (matmuls, convolutions, attention; SDPA counts ignore causal masking), plus analytic formulas declared by the workload for what the counter cannot see (the selective scan), shown separately."),
    ("Bytes", "Unfused op-level traffic: the tensor inputs and outputs of every op in the counting pass (views are free). Counts each weight once per use, state read and written, and activations; an upper bound for fused kernels."),
    ("Arithmetic intensity", "FLOPs / bytes of a phase. Roofline bound = min(peak FLOP/s, bandwidth × intensity), with both ceilings measured on this machine by `python -m profiler calibrate`."),
    ("MFU / MBU", "Achieved FLOP/s over the measured peak matmul FLOP/s of the workload's dtype; achieved bytes/s over the measured copy bandwidth. Achieved rates use the phase's median device time (CUDA events) or host time."),
    ("Bound class", "Overhead-bound if MFU < 20% and MBU < 20% (time goes to launches, Python, the host); otherwise compute-bound if intensity ≥ the ridge point (peak / bandwidth), else memory-bound."),
    ("Operator mix", "From one extra iteration under torch.profiler: each op's self time, attributed to its innermost phase and to the category of the outermost op the model called; host/framework is time in the phase outside any op. On CUDA: kernel time, launches and device-idle fraction."),
    ("Energy", "NVML total-energy counter differences over windows of at least 1 s (never integrated 1-second power readings); per output unit over the measured window; idle power measured before the run."),
    ("Differences", "Workload ÷ baseline for each characteristic, with a 95% bootstrap interval of the ratio of medians; a difference whose interval includes 1 is reported as no difference. Readings and levers come from reports/rules.yaml."),
    ("Main phase", "The phase a characteristic is read from: the step phase carrying `position` with the most spans (decode_step, denoise_step), else the leaf phase with the most counted FLOPs (a VLA's action head)."),
    ("Control loop", "Ticks at the control rate with real pacing. Deadline = the next tick's start; a miss = no action ready, or sent after the deadline. Jitter = p99 − p50 (and std) of the tick interval. Staleness = age of the observation behind the executed action. Inference latency = observation capture to action chunk. Duty cycle = share of the episode spent inferring."),
    ("Unavailable", "A metric this machine cannot measure (no GPU, no counter) is shown as unavailable with the reason; it is never estimated or shown as zero."),
    ("Weights", "Models built from published architecture configs use random weights: inference performance does not depend on weight values, only on shapes, dtype and kernels."),
]
