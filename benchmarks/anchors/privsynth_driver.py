"""privsynth's generators under the shared harness (run with the project's .venv).

With ``--domain`` (codes) every column is categorical; with ``--codebook`` the schema file is
used as it is (raw values). Options: ``device=cpu|cuda``, ``target=COLUMN`` (MST's
prediction target), ``discovery_share=F``."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from _driver import main, options  # noqa: E402


def fit(train, domain, args):
    from privsynth import AIM, DPCTGAN, DPVAE, MST
    from privsynth.schema import Schema

    if args.codebook is not None:
        schema = Schema.from_dict(args.codebook)
    else:
        schema = Schema.from_dict(
            {
                "version": 1,
                "columns": {
                    c: {"kind": "categorical", "categories": list(range(k))}
                    for c, k in domain.items()
                },
            }
        )
    cls = {"mst": MST, "aim": AIM, "dpvae": DPVAE, "dpctgan": DPCTGAN}[args.algo]
    opts = options(args)
    device = opts.get("device", "cpu")
    params = {"target": opts["target"]} if "target" in opts else {}
    if "discovery_share" in opts:
        params["discovery_share"] = float(opts["discovery_share"])
    import privsynth

    args.extra.update(version=getattr(privsynth, "__version__", "?"), device=device, **params)
    model = cls(epsilon=args.epsilon, delta=args.delta, device=device, **params).fit(train, schema)
    if args.algo == "aim":  # every measurement after the 1-way ones took one selection round
        args.extra["rounds"] = len(model.measurements_) - len(schema.synthesised)
    args.extra["learned"] = {
        c.name: {
            "lower": c.lower,
            "upper": c.upper,
            "point_masses": list(c.learned.point_masses),
            "bins": len(c.learned.edges) - 1,
        }
        for c in model.schema_.synthesised
        if c.learned is not None
    }
    return model


def sample(model, n, args):
    return model.sample(n, seed=args.seed)


if __name__ == "__main__":
    main("privsynth", fit, sample)
