"""Typed privacy events and budgets: what a mechanism charges and what the ledger records.

Events are frozen and serialisable; the meaning of an event never changes (add a new one
instead), so a ledger written today can be re-accounted by a better accountant later.  How
events compose and convert to (epsilon, delta) is :mod:`privsynth.budget.analysis`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields

from privsynth.errors import ConfigError


def check_param(name: str, value: float, *, upper: float | None = None) -> float:
    """Return ``value`` as float if it is a finite, non-negative, normal number."""
    v = float(value)
    if math.isnan(v) or math.isinf(v) or v < 0 or (0 < v < 2.2250738585072014e-308):
        raise ConfigError(f"{name} ({value!r}) must be a finite number >= 0 (and not subnormal)")
    if upper is not None and v > upper:
        raise ConfigError(f"{name} ({value!r}) must be <= {upper}")
    return v


@dataclass(frozen=True)
class ZCDP:
    """A rho-zCDP mechanism (e.g. Gaussian noise on a sensitivity-1 count vector)."""

    rho: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", check_param("rho", self.rho))


@dataclass(frozen=True)
class PureDP:
    """An epsilon-DP mechanism (Laplace, exponential mechanism)."""

    epsilon: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_param("epsilon", self.epsilon))


@dataclass(frozen=True)
class ApproxDP:
    """An (epsilon, delta)-DP mechanism with no tighter curve (e.g. a stability histogram)."""

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_param("epsilon", self.epsilon))
        object.__setattr__(self, "delta", check_param("delta", self.delta, upper=1.0))


@dataclass(frozen=True)
class ApproxZCDP:
    """A (rho, delta)-approximate-zCDP mechanism (Bun & Steinke 2016, Def. 8): rho-zCDP
    except on an event of probability delta, e.g. a Gaussian-threshold stable histogram.
    Composes by adding rho to the zCDP pieces and delta to the approximate ones."""

    rho: float
    delta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "rho", check_param("rho", self.rho))
        object.__setattr__(self, "delta", check_param("delta", self.delta, upper=1.0))


@dataclass(frozen=True)
class SubsampledGaussian:
    """``steps`` rounds of the Poisson-subsampled Gaussian mechanism (DP-SGD)."""

    sample_rate: float
    noise_multiplier: float
    steps: int

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "sample_rate", check_param("sample_rate", self.sample_rate, upper=1.0)
        )
        object.__setattr__(
            self, "noise_multiplier", check_param("noise_multiplier", self.noise_multiplier)
        )
        if self.noise_multiplier == 0:
            raise ConfigError("noise_multiplier (0) must be > 0")
        if int(self.steps) != self.steps or self.steps < 0:
            raise ConfigError(f"steps ({self.steps!r}) must be a non-negative integer")
        object.__setattr__(self, "steps", int(self.steps))


PrivacyEvent = ZCDP | PureDP | ApproxDP | ApproxZCDP | SubsampledGaussian
#: What a mechanism returns next to its value and what the ledger records.
Charge = PrivacyEvent

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls for cls in (ZCDP, PureDP, ApproxDP, ApproxZCDP, SubsampledGaussian)
}


def event_to_dict(event: PrivacyEvent) -> dict:
    """Serialise an event as ``{"type": name, **fields}``."""
    return {"type": type(event).__name__, **asdict(event)}


def event_from_dict(data: dict) -> PrivacyEvent:
    """Inverse of :func:`event_to_dict`; refuses unknown types and fields."""
    data = dict(data)
    name = data.pop("type", None)
    cls = EVENT_TYPES.get(name)
    if cls is None:
        raise ConfigError(f"unknown privacy event type {name!r}; known: {sorted(EVENT_TYPES)}")
    expected = {f.name for f in fields(cls)}
    if set(data) != expected:
        raise ConfigError(f"{name} event needs fields {sorted(expected)}, got {sorted(data)}")
    return cls(**data)


# ---------------------------------------------------------------------------------------------
# Budgets
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """An (epsilon, delta) pair: a cap, or what was spent or what remains.

    ``epsilon`` is finite and ``>= 0`` (a spend or a remainder can be zero; a ledger cap must be
    ``> 0``, which the ledger checks), ``0 <= delta < 1``.

    >>> Budget(1.0, 1e-9).to_dict()
    {'epsilon': 1.0, 'delta': 1e-09}
    """

    epsilon: float
    delta: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "epsilon", check_param("epsilon", self.epsilon))
        object.__setattr__(self, "delta", check_param("delta", self.delta))
        if self.delta >= 1:
            raise ConfigError(f"delta ({self.delta!r}) must be < 1")

    def to_dict(self) -> dict:
        return {"epsilon": self.epsilon, "delta": self.delta}

    @classmethod
    def from_dict(cls, data: object) -> Budget:
        if not isinstance(data, Mapping) or set(data) != {"epsilon", "delta"}:
            raise ConfigError(f"a budget needs exactly the fields epsilon and delta, got {data!r}")
        return cls(epsilon=data["epsilon"], delta=data["delta"])

    def __str__(self) -> str:
        return f"(epsilon={format_param(self.epsilon)}, delta={format_param(self.delta)})"


def format_param(x: float) -> str:
    """Short human form of a privacy parameter (12 significant digits)."""
    return f"{x:.12g}"


def event_summary(event: PrivacyEvent) -> str:
    """A short human description of an event, e.g. ``PureDP(epsilon=0.1)``."""
    inner = ", ".join(f"{k}={format_param(v)}" for k, v in asdict(event).items())
    return f"{type(event).__name__}({inner})"


def as_events(events: PrivacyEvent | Iterable[PrivacyEvent]) -> list[PrivacyEvent]:
    """One event or an iterable of events as a list; anything that is not an event is refused
    with :class:`ConfigError`."""
    if isinstance(events, tuple(EVENT_TYPES.values())):
        return [events]  # type: ignore[list-item]
    out = list(events)  # type: ignore[arg-type]
    for e in out:
        if not isinstance(e, tuple(EVENT_TYPES.values())):
            raise ConfigError(
                f"expected privacy events ({', '.join(sorted(EVENT_TYPES))}), got {e!r}"
            )
    return out
