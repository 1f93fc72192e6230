"""smartnoise-synth's MST / AIM / DPCTGAN / PATECTGAN synthesizers under the shared harness.

All columns are declared categorical. smartnoise's label transformer takes each column's
categories from the training data (not from the public domain file), with no preprocessor
budget; smartnoise converts (epsilon, delta) to zCDP itself (MST, AIM). The GANs run with
smartnoise's defaults (at most 300 epochs, stopping when their accountant reaches epsilon)
and the harness's delta (smartnoise's own default delta is derived from the row count);
``--option epochs=N`` caps the epochs.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def fit(train, domain, args):
    import importlib.metadata

    import numpy as np
    from snsynth.aim import AIMSynthesizer
    from snsynth.mst import MSTSynthesizer

    np.random.seed(args.seed)  # noqa: NPY002 - smartnoise draws its noise from numpy's global state
    if args.algo in ("dpctgan", "patectgan"):
        return _fit_gan(train, domain, args)
    if args.algo == "mst":
        synth = MSTSynthesizer(epsilon=args.epsilon, delta=args.delta)
    else:
        synth = AIMSynthesizer(
            epsilon=args.epsilon, delta=args.delta, degree=int(options(args).get("degree", 2))
        )
    synth.fit(train.astype("int64"), categorical_columns=list(domain), preprocessor_eps=0.0)
    args.extra.update(version=importlib.metadata.version("smartnoise-synth"))
    return synth


def _fit_gan(train, domain, args):
    import importlib.metadata

    import numpy as np
    import torch
    from snsynth import Synthesizer

    np.random.seed(args.seed)  # noqa: NPY002 - smartnoise samples from numpy's global state
    torch.manual_seed(args.seed)
    kwargs = {"epsilon": args.epsilon, "delta": args.delta, "verbose": False}
    kwargs.update({k: int(v) for k, v in options(args).items() if k == "epochs"})
    synth = Synthesizer.create(args.algo, **kwargs)
    synth.fit(train.astype("int64"), categorical_columns=list(domain), preprocessor_eps=0.0)
    args.extra.update(
        version=importlib.metadata.version("smartnoise-synth"),
        torch_threads=torch.get_num_threads(),
        settings={k: v for k, v in kwargs.items() if k != "verbose"},
    )
    return synth


def sample(synth, n, args):
    import pandas as pd

    out = synth.sample(n)
    return (
        out if isinstance(out, pd.DataFrame) else pd.DataFrame(out, columns=list(args.domain_cols))
    )


if __name__ == "__main__":
    main("smartnoise", fit, sample)
