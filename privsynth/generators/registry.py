"""The generators by the names the CLI and :func:`privsynth.release` accept."""

from __future__ import annotations

from typing import Any

from privsynth.errors import ConfigError
from privsynth.generators.base import Generator
from privsynth.generators.dpsgd.dpctgan import DPCTGAN
from privsynth.generators.dpsgd.dpvae import DPVAE
from privsynth.generators.marginal.aim import AIM
from privsynth.generators.marginal.mst import MST

GENERATORS: dict[str, type[Generator]] = {
    "mst": MST,
    "aim": AIM,
    "dpvae": DPVAE,
    "dpctgan": DPCTGAN,
}


def make_generator(name: str, epsilon: float, delta: float, **params: Any) -> Generator:
    """A generator by name (case-insensitive) with its (epsilon, delta) and parameters.

    Raises
    ------
    ConfigError
        An unknown name (the message lists the known ones).
    """
    try:
        cls = GENERATORS[name.lower()]
    except KeyError:
        raise ConfigError(
            f"unknown generator {name!r}; choose one of {', '.join(GENERATORS)}"
        ) from None
    return cls(epsilon=epsilon, delta=delta, **params)
