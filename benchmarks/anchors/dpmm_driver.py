"""sassoftware's dpmm MST / AIM pipelines under the shared harness.

Preprocessing (dpmm's DP binner) is disabled and the public domain sizes are passed in, so
the whole (epsilon, delta) goes to the generator, as for the other tools. dpmm converts
(epsilon, delta) to its zCDP budget itself.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def fit(train, domain, args):
    import importlib.metadata

    from dpmm.pipelines import AIMPipeline, MSTPipeline

    opts = options(args)
    cls = {"mst": MSTPipeline, "aim": AIMPipeline}[args.algo]
    gen_kwargs = {"degree": int(opts.get("degree", 2))} if args.algo == "aim" else {}
    pipe = cls(
        epsilon=args.epsilon, delta=args.delta, disable_processing=True, gen_kwargs=gen_kwargs
    )
    pipe.fit(train.astype("int64"), domain=dict(domain), random_state=args.seed)
    args.extra.update(version=importlib.metadata.version("dpmm"), **gen_kwargs)
    return pipe


def sample(pipe, n, args):
    return pipe.generate(n_records=n, random_state=args.seed)


if __name__ == "__main__":
    main("dpmm", fit, sample)
