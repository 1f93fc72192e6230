"""privsynth's MST / AIM under the shared harness (run with the project's .venv).

Options: ``device=cpu|cuda``, ``target=COLUMN`` (MST's prediction target)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def fit(train, domain, args):
    from privsynth.generators.aim import AIM
    from privsynth.generators.mst import MST
    from privsynth.schema import Schema

    schema = Schema.from_dict(
        {
            "version": 1,
            "columns": {
                c: {"kind": "categorical", "categories": list(range(k))} for c, k in domain.items()
            },
        }
    )
    cls = {"mst": MST, "aim": AIM}[args.algo]
    opts = options(args)
    device = opts.get("device", "cpu")
    params = {"target": opts["target"]} if "target" in opts else {}
    import privsynth

    args.extra.update(version=getattr(privsynth, "__version__", "?"), device=device, **params)
    model = cls(epsilon=args.epsilon, delta=args.delta, device=device, **params).fit(train, schema)
    if args.algo == "aim":  # every measurement after the 1-way ones took one selection round
        args.extra["rounds"] = len(model.measurements_) - len(domain)
    return model


def sample(model, n, args):
    return model.sample(n, seed=args.seed)


if __name__ == "__main__":
    main("privsynth", fit, sample)
