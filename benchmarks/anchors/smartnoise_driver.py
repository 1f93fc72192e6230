"""smartnoise-synth's MST / AIM synthesizers under the shared harness.

All columns are declared categorical. smartnoise's label transformer takes each column's
categories from the training data (not from the public domain file), with no preprocessor
budget; smartnoise converts (epsilon, delta) to zCDP itself.
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
    if args.algo == "mst":
        synth = MSTSynthesizer(epsilon=args.epsilon, delta=args.delta)
    else:
        synth = AIMSynthesizer(
            epsilon=args.epsilon, delta=args.delta, degree=int(options(args).get("degree", 2))
        )
    synth.fit(train.astype("int64"), categorical_columns=list(domain), preprocessor_eps=0.0)
    args.extra.update(version=importlib.metadata.version("smartnoise-synth"))
    return synth


def sample(synth, n, args):
    import pandas as pd

    out = synth.sample(n)
    return (
        out if isinstance(out, pd.DataFrame) else pd.DataFrame(out, columns=list(args.domain_cols))
    )


if __name__ == "__main__":
    main("smartnoise", fit, sample)
