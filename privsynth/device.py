"""Choosing the torch device: one rule for the generators, the estimator and the attacks."""

from __future__ import annotations

import torch

from privsynth.errors import ConfigError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` is CUDA when present, else the CPU; ``"cpu"``, ``"cuda"`` or ``"cuda:i"`` name
    one. A bad name, or CUDA where there is none, is a :class:`ConfigError`."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ConfigError(f"device ({device!r}) must be 'auto', 'cpu' or 'cuda[:i]'") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device ({device!r}): CUDA is not available; use 'auto' or 'cpu'")
    return dev
