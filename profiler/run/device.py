"""Which device a run uses: `--device auto | cpu | cuda | cuda:N`, checked against this machine."""

from __future__ import annotations

from ..errors import UserError


def resolve_device(requested: str) -> str:
    """'auto' -> 'cuda' when torch sees a GPU, else 'cpu'; 'cuda[:N]' must exist (UserError if not)."""
    if requested == "cpu":
        return "cpu"
    import torch

    available = torch.cuda.is_available()
    if requested == "auto":
        return "cuda" if available else "cpu"
    if not available:
        build = f"torch {torch.__version__}" + (" (a CPU-only build)" if torch.version.cuda is None else "")
        raise UserError(f"--device {requested}: CUDA is not available on this machine ({build}); use --device cpu or auto")
    index = int(requested.split(":")[1]) if ":" in requested else 0
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"--device {requested}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
    return requested
