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
    ("Unavailable", "A metric this machine cannot measure (no GPU, no counter) is shown as unavailable with the reason; it is never estimated or shown as zero."),
    ("Weights", "Models built from published architecture configs use random weights: inference performance does not depend on weight values, only on shapes, dtype and kernels."),
]
