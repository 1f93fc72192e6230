"""Networks of the DP-SGD generators: multilayer perceptrons and their checked widths."""

from __future__ import annotations

from typing import Any

from torch import nn

from privsynth.errors import ConfigError


def mlp(d_in: int, hidden: tuple[int, ...], d_out: int, slope: float = 0.0) -> nn.Sequential:
    """Linear layers with (leaky) ReLU between them; no normalisation layers."""
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(d_in, h), nn.LeakyReLU(slope) if slope else nn.ReLU()]
        d_in = h
    layers.append(nn.Linear(d_in, d_out))
    return nn.Sequential(*layers)


def check_hidden(hidden: Any) -> tuple[int, ...]:
    """``hidden`` as a tuple of positive layer widths, or ConfigError."""
    try:
        out = tuple(int(h) for h in hidden)
    except (TypeError, ValueError):
        out = ()
    if not out or any(h < 1 for h in out) or list(out) != list(hidden):
        raise ConfigError(f"hidden ({hidden!r}) must be a non-empty list of positive integers")
    return out
