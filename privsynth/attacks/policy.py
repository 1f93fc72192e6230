"""Policies: named threshold profiles (TOML) that turn attack results into verdicts.

A policy is found by name among those shipped in ``privsynth/attacks/policies/`` (``standard``,
``strict``) or given as a path to any TOML file. Every threshold applies to the *lower* end
of a result's 95% interval: an attack fails only when the data show, with 95% confidence,
more success than the policy tolerates. Diagnostics are never judged.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

from privsynth.attacks.base import AttackResult
from privsynth.errors import ConfigError

#: The shipped policies (package data).
POLICY_DIR: Traversable = resources.files("privsynth.attacks") / "policies"

#: Sections and keys a policy must give (all numbers).
REQUIRED = {
    "membership": ("max_auc_lower", "max_tpr_lower_at_1pct_fpr"),
    "attribute_inference": ("max_advantage_lower",),
    "singling_out": ("max_advantage_lower",),
    "linkability": ("max_advantage_lower",),
    "canary": ("loose_ratio",),
}
#: Sections and keys a policy may give, with their defaults (an older policy file lacks them).
OPTIONAL = {
    "report": {"min_cell_rows": 10.0},
    "usefulness": {
        "min_prediction_ratio_good": 0.8,
        "min_prediction_ratio_acceptable": 0.5,
        "max_association_ratio_good": 0.5,
        "max_association_ratio_acceptable": 0.8,
        "max_c2st_auc_good": 0.75,
        "max_c2st_auc_acceptable": 0.95,
    },
    # Bias per protected group (privsynth.utility.groups, which holds the same defaults):
    # flag a group whose synthetic share is below this ratio of its real share, or whose
    # train-synthetic-test-real score is more than this below the real-data model's.
    "bias": {"max_share_drop_ratio": 0.5, "max_score_drop": 0.1},
    "sample": {
        "synthetic_rows": 50_000.0,
        "reference_rows": 50_000.0,
        "targets": 5_000.0,
        "queries": 1_000.0,
    },
}
#: The smallest sample size a policy may set.
MIN_SAMPLE = 10


@dataclass(frozen=True)
class Policy:
    """A loaded policy: its name, description, source file and thresholds."""

    name: str
    description: str
    source: str
    thresholds: dict[str, dict[str, float]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "source": self.source,
            "thresholds": self.thresholds,
        }

    @property
    def sample(self) -> dict[str, int]:
        """The audit's sample sizes: ``synthetic_rows`` attacked, ``reference_rows`` of train
        (and of holdout), ``targets`` per side, singling-out ``queries`` per mode. They bound
        the suite's cost whatever the table's size."""
        return {k: int(v) for k, v in self.thresholds["sample"].items()}

    @property
    def min_cell_rows(self) -> int:
        """Small-cell suppression of the report: real shares of fewer rows are not shown."""
        return int(self.thresholds["report"]["min_cell_rows"])

    @property
    def bias(self) -> dict[str, float]:
        """The thresholds that flag a protected group: ``max_share_drop_ratio`` (synthetic
        share under this ratio of the real share) and ``max_score_drop`` (TSTR score this far
        below the real-data model's on the group's rows)."""
        return dict(self.thresholds["bias"])

    def judge(self, result: AttackResult) -> AttackResult:
        """The result with ``passed`` set (left ``None`` for diagnostics)."""
        section = _section(result.name)
        if section is None:
            return result
        t = self.thresholds[section]
        if section == "membership":
            at_1pct = [x for x in result.details.get("tpr_at_fpr", []) if x["fpr"] == 0.01]
            non_members = result.details.get("n_targets", {}).get("non_members", 0)
            # The TPR at 1% FPR is judged only where it is measured: with fewer than
            # MIN_NON_MEMBERS_AT_1PCT non-members the threshold sits above all but a handful of
            # them, and a few members past it (chance: about 2^-m for m of them) would fail.
            judged = at_1pct and non_members >= MIN_NON_MEMBERS_AT_1PCT
            tpr_lower = at_1pct[0]["ci"][0] if judged else 0.0
            ok = result.ci[0] <= t["max_auc_lower"] and tpr_lower <= t["max_tpr_lower_at_1pct_fpr"]
        else:
            ok = result.ci[0] <= t["max_advantage_lower"]
        return replace(result, passed=bool(ok))


#: Non-member targets needed to judge the TPR at 1% FPR: 10 of them above the threshold.
MIN_NON_MEMBERS_AT_1PCT = 1000


def _section(name: str) -> str | None:
    for prefix, section in (
        ("membership_", "membership"),
        ("attribute_inference_", "attribute_inference"),
        ("singling_out_", "singling_out"),
        ("linkability", "linkability"),
    ):
        if name.startswith(prefix):
            return section
    return None


def available() -> list[str]:
    """Names of the policies shipped in ``privsynth/attacks/policies/``."""
    names = (p.name for p in POLICY_DIR.iterdir())
    return sorted(Path(n).stem for n in names if n.endswith(".toml"))


def load_policy(policy: str | Path) -> Policy:
    """Load a policy by name (``standard``, ``strict``) or from a TOML file path.

    Raises
    ------
    ConfigError
        Unknown name, unreadable or invalid TOML, or a missing/non-numeric threshold.
    """
    given = Path(policy)
    path: Path | Traversable = given
    # Only a plain name is looked up in POLICY_DIR: "../x" is a path, never a name that
    # walks out of the folder.
    if not (given.suffix == ".toml" or given.exists() or len(given.parts) != 1):
        path = POLICY_DIR / f"{policy}.toml"
        if not path.is_file():
            raise ConfigError(
                f"policy {str(policy)!r} is neither a TOML file nor one of {available()} "
                f"(in {POLICY_DIR})"
            )
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise ConfigError(f"policy file {path} does not exist") from exc
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy file {path} is not valid TOML: {exc}") from exc
    thresholds: dict[str, dict[str, float]] = {}
    for section, keys in REQUIRED.items():
        got = data.get(section)
        if not isinstance(got, dict):
            raise ConfigError(f"policy file {path}: add a [{section}] table with {list(keys)}")
        thresholds[section] = {}
        for key in keys:
            value = got.get(key)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(
                    f"policy file {path}: [{section}] {key} must be a number, got {value!r}"
                )
            thresholds[section][key] = float(value)
    for section, defaults in OPTIONAL.items():
        got = data.get(section, {})
        thresholds[section] = {}
        for key, default in defaults.items():
            value = got.get(key, default) if isinstance(got, dict) else None
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ConfigError(
                    f"policy file {path}: [{section}] {key} must be a number >= 0, got {value!r}"
                )
            if section == "sample" and (value != int(value) or value < MIN_SAMPLE):
                raise ConfigError(
                    f"policy file {path}: [sample] {key} must be a whole number >= "
                    f"{MIN_SAMPLE}, got {value!r}"
                )
            thresholds[section][key] = float(value)
    return Policy(
        name=str(data.get("name", Path(path.name).stem)),
        description=str(data.get("description", "")),
        source=path.name,
        thresholds=thresholds,
    )
