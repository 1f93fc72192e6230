"""The benchmarks' Adult data and its split: one seeded shuffle, the first 80 % to train on,
the last 20 % held out. It needs pandas only, so the anchors' virtualenvs can import it too."""

from __future__ import annotations

import json
import os

import pandas as pd

SHARED = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data", "adult"
)
DATA = os.path.join(SHARED, "adult.csv")  # integer codes, the literature's preprocessing
DOMAIN = os.path.join(SHARED, "adult-domain.json")  # {column: number of codes}, public


def load_domain() -> dict[str, int]:
    with open(DOMAIN) as fh:
        return {k: int(v) for k, v in json.load(fh).items()}


def split(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train, holdout): the first 80 % of ``frame`` shuffled with ``seed``, and the rest."""
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut = int(round(0.8 * len(shuffled)))
    return shuffled.iloc[:cut].reset_index(drop=True), shuffled.iloc[cut:].reset_index(drop=True)


def adult(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, int]]:
    """The shared Adult table's (train, holdout, domain), columns in the domain's order."""
    dom = load_domain()
    return (*split(pd.read_csv(DATA)[list(dom)], seed), dom)
