"""privsynth: differentially private synthetic tables, a persistent privacy-budget ledger and
signed audit reports.

Public API: :class:`Schema`, :class:`Column`, :class:`Encoder`, the generators (:class:`MST`,
:class:`AIM`, :class:`DPVAE`, :class:`DPCTGAN`), :func:`release` (a signed release; its
options as a :class:`ReleaseConfig`), :func:`verify_release`,
:func:`render_release` (re-render a release's report), :func:`keygen`, :mod:`attacks` (the
attack suite), the budget types (:class:`Budget`, :class:`Ledger` and the privacy events) and
the error hierarchy.
"""

from importlib.metadata import PackageNotFoundError, version

from privsynth.budget import Budget, Ledger
from privsynth.budget.events import ZCDP, ApproxDP, ApproxZCDP, PureDP, SubsampledGaussian
from privsynth.discovery import discover_domains, plan_discovery
from privsynth.encoding import Encoder
from privsynth.errors import (
    BudgetExceeded,
    ConfigError,
    DataError,
    LedgerCorrupt,
    LedgerError,
    PrivsynthError,
    SchemaError,
    SignatureError,
)
from privsynth.schema import Column, Schema

# The generators pull in torch (seconds to import): load them on first use, so that
# `privsynth ledger show` and `import privsynth` stay quick.
_LAZY = {
    "MST": "privsynth.generators.marginal.mst",
    "AIM": "privsynth.generators.marginal.aim",
    "DPVAE": "privsynth.generators.dpsgd.dpvae",
    "DPCTGAN": "privsynth.generators.dpsgd.dpctgan",
    "release": "privsynth.pipeline",
    "ReleaseConfig": "privsynth.pipeline",
    "ReleaseResult": "privsynth.pipeline",
    "verify_release": "privsynth.report.verify",
    "render_release": "privsynth.report.render",
    "keygen": "privsynth.report.keys",
}
# ``audit`` is the deprecated name of ``attacks`` (one release).
_LAZY_MODULES = ("attacks", "audit")


def __getattr__(name: str) -> object:
    import importlib

    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _LAZY_MODULES:
        return importlib.import_module(f"privsynth.{name}")
    raise AttributeError(f"module 'privsynth' has no attribute {name!r}")


try:
    __version__ = version("privsynth")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0+unknown"

__all__ = [
    "AIM",
    "DPCTGAN",
    "DPVAE",
    "MST",
    "ApproxDP",
    "ApproxZCDP",
    "Budget",
    "BudgetExceeded",
    "Column",
    "ConfigError",
    "DataError",
    "Encoder",
    "Ledger",
    "LedgerCorrupt",
    "LedgerError",
    "PrivsynthError",
    "PureDP",
    "ReleaseConfig",
    "ReleaseResult",
    "Schema",
    "SchemaError",
    "SignatureError",
    "SubsampledGaussian",
    "ZCDP",
    "__version__",
    "attacks",
    "audit",
    "discover_domains",
    "keygen",
    "plan_discovery",
    "release",
    "render_release",
    "verify_release",
]
