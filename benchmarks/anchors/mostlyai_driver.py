"""mostlyai-engine's TabularARGN (flat table, DP-SGD via Opacus) under the shared harness.

Raw mode only (``--codebook``): the engine models raw values. Columns whose codebook kind is
``integer`` go in as ``TABULAR_NUMERIC_AUTO``, the rest (categorical, ordinal) as
``TABULAR_CATEGORICAL``; the engine learns value ranges and category lists from the data
itself (it has no way to take the codebook's public ones) and protects them with its DP
"value protection" step.

The engine's own workspace pipeline runs in a temporary directory: ``split`` (its 80/20
training/validation split of the rows) -> ``analyze`` -> ``encode`` -> ``train`` ->
``generate``, on the CPU, seeded by ``set_random_state(args.seed)``. DP is a
``DifferentialPrivacyConfig(max_epsilon=epsilon, value_protection_epsilon=0.1)`` with the
engine's default delta (1e-5) unless ``--option delta=F`` sets it (at the harness's 1e-9 one
DP-SGD step already costs about epsilon 0.9, so almost no training fits in epsilon 1); the noise
multiplier (1.5) and clipping norm (1.0) are the engine's defaults. ``max_epsilon`` is the
total budget: the engine adds the value-protection epsilon to its RDP accountant's training
epsilon and stops training at the first epoch end where that total exceeds it, keeping the
checkpoint with the best validation loss among the epochs that stayed within it.

Caveat (the engine's design, not changed here): the validation rows are the private data too,
and their unnoised validation loss drives early stopping, learning-rate decay and checkpoint
choice; the engine's reported epsilon does not account for that.

``args.extra`` records the engine version, the encoding types, the settings and the epsilon
the engine reports: ``epsilon_spent`` (the kept checkpoint's ``dp_eps``, value protection
included), ``epsilon_accountant_final`` (the last reported ``dp_eps``, which can exceed the
budget on the epoch that stopped training), ``epsilon_exceeds_budget`` and
``value_protection_epsilon_spent``. The engine rounds the reported epsilons to 2 decimals. If no
epoch ends within the budget (small data: one epoch can already exceed it) the engine still
keeps the weights it has, so the kept model can have spent more than ``--epsilon``;
``epsilon_exceeds_budget`` is then true.

Options (all default to the engine's own defaults, i.e. nothing is capped):

* ``--option max_epochs=F``         training epochs cap (engine default 100)
* ``--option max_training_time=F``  training time cap in minutes (engine default 14400)
* ``--option verbose=0``            silence the engine's log (default 1: log to stdout)
* ``--option delta=F``              the DP delta (default: the engine's, 1e-5)
"""

from __future__ import annotations

import os
import sys

import pandas as pd

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402

VALUE_PROTECTION_EPSILON = 0.1
NUMERIC_KINDS = ("integer", "float", "numeric", "continuous")


def _category(v):
    if pd.isna(v):
        return v
    return str(int(v)) if isinstance(v, float) and v.is_integer() else str(v)


def encoding_types(columns, codebook) -> dict[str, str]:
    kinds = {c: v.get("kind") for c, v in codebook["columns"].items()}
    return {
        c: "TABULAR_NUMERIC_AUTO" if kinds.get(c) in NUMERIC_KINDS else "TABULAR_CATEGORICAL"
        for c in columns
    }


def fit(train, domain, args):
    import importlib.metadata
    import tempfile

    import pandas as pd
    from mostlyai import engine
    from mostlyai.engine._workspace import Workspace
    from mostlyai.engine.domain import DifferentialPrivacyConfig, ModelType

    if args.codebook is None:
        raise SystemExit("mostlyai_driver: raw mode only, pass --codebook SCHEMA.json")
    opts = options(args)
    if int(opts.get("verbose", 1)):
        engine.init_logging()
    engine.set_random_state(args.seed)

    enc = encoding_types(train.columns, args.codebook)
    data = train.copy()
    for c, t in enc.items():  # categorical columns as strings, numeric ones as numbers
        if t == "TABULAR_NUMERIC_AUTO":
            data[c] = pd.to_numeric(data[c])
        else:  # strings as the codebook writes them (1.0 -> "1"), missing left missing
            data[c] = data[c].map(_category).astype(object)
    dp = DifferentialPrivacyConfig(
        max_epsilon=args.epsilon,
        value_protection_epsilon=VALUE_PROTECTION_EPSILON,
        **({"delta": float(opts["delta"])} if "delta" in opts else {}),
    )
    train_kwargs = {
        k: float(opts[k]) for k in ("max_epochs", "max_training_time") if k in opts
    }  # absent: the engine's defaults

    tmp = tempfile.TemporaryDirectory(prefix="mostlyai-ws-")
    ws = tmp.name
    engine.split(
        tgt_data=data, tgt_encoding_types=enc, model_type=ModelType.tabular, workspace_dir=ws
    )
    engine.analyze(value_protection=True, differential_privacy=dp, workspace_dir=ws)
    engine.encode(workspace_dir=ws)
    engine.train(differential_privacy=dp, device="cpu", workspace_dir=ws, **train_kwargs)

    workspace = Workspace(ws)
    tgt_stats = workspace.tgt_stats.read()
    extra = {
        "version": importlib.metadata.version("mostlyai-engine"),
        "torch": importlib.metadata.version("torch"),
        "opacus": importlib.metadata.version("opacus"),
        "encoding_types": enc,
        "differential_privacy": dp.model_dump(),
        "train_settings": train_kwargs or "engine defaults",
        "value_protection_epsilon_spent": tgt_stats.get("value_protection_epsilon_spent"),
        "no_of_training_records": tgt_stats.get("no_of_training_records"),
        "no_of_validation_records": tgt_stats.get("no_of_validation_records"),
    }
    progress_path = workspace.model_progress_messages_path
    if progress_path.exists():
        prog = pd.read_csv(progress_path)
        extra["epochs"] = float(prog["epoch"].max())
        if "dp_eps" in prog and prog["dp_eps"].notna().any():
            eps = prog["dp_eps"].dropna()
            kept = prog[(prog["is_checkpoint"] == 1) & prog["dp_eps"].notna()]
            extra["epsilon_accountant_final"] = float(eps.iloc[-1])
            extra["epsilon_spent"] = float(kept["dp_eps"].iloc[-1]) if len(kept) else None
            if len(kept):
                extra["checkpoint_epoch"] = float(kept["epoch"].iloc[-1])
            # the engine keeps the last weights when no epoch ended within the budget
            # (e.g. the first epoch already exceeds it): flag such an overspend
            extra["epsilon_exceeds_budget"] = bool(
                extra["epsilon_spent"] is not None and extra["epsilon_spent"] > args.epsilon
            )
    args.extra.update(extra)
    return tmp  # keeps the workspace alive until sampling


def sample(tmp, n, args):
    from mostlyai import engine
    from mostlyai.engine._common import load_generated_data

    engine.generate(sample_size=n, device="cpu", workspace_dir=tmp.name)
    syn = load_generated_data(tmp.name).reset_index(drop=True)
    tmp.cleanup()
    return syn


if __name__ == "__main__":
    main("mostlyai", fit, sample)
