"""Raw records: spans, the sampler, NVML, the run directory store, ceilings, the counting and traced passes."""
