"""Plain words for the report's technical names: attacks, metrics and statistical terms.

The HTML report shows an attack or metric by its plain name; the glossary at its end gives,
for every name shown, the technical name (as in audit.json) and what it means. A name the
tables here do not know is shown with its underscores as spaces, and :func:`known` says so,
so that a test can insist on a plain name for every name a release produces.
"""

from __future__ import annotations

import re

#: Attacks and diagnostics of the suite (``privsynth.attacks``), by name; a bracketed suffix
#: (``attribute_inference_nn[income]``) names the column attacked.
ATTACK_NAMES: dict[str, tuple[str, str]] = {
    "dcr_closer_to_train": (
        "share of synthetic rows closer to a training row than to a held-out one",
        "about one half when the generator is no closer to the rows it learnt from than to "
        "rows it never saw; near 1 when it copies its training rows",
    ),
    "exact_match_rate": (
        "share of synthetic rows identical to a training row",
        "compared with the share identical to a held-out row (the baseline); exact copies "
        "miss near copies, which the membership attacks catch",
    ),
    "membership_distance": (
        "membership guess from the closest synthetic row",
        "guesses that a person's row was used for training when a synthetic row is close to it",
    ),
    "membership_density_ratio": (
        "membership guess from crowded synthetic rows",
        "guesses that a person's row was used when synthetic rows crowd around it more than "
        "real people do (DOMIAS)",
    ),
    "attribute_inference_nn": (
        "guessing {col} from the closest synthetic row",
        "an attacker who knows a person's other details guesses {col} from the most similar "
        "synthetic row; compares success on training people with success on held-out people",
    ),
    "attribute_inference_model": (
        "guessing {col} with a model trained on synthetic rows",
        "as above, with a classifier trained on the synthetic table",
    ),
    "linkability": (
        "linking two halves of a person's record",
        "an attacker holding two sets of columns about the same people matches them up "
        "through the synthetic table",
    ),
    "singling_out_univariate": (
        "singling out a person by one rare value",
        "rules of one value, written from the synthetic table, that match exactly one real person",
    ),
    "singling_out_multivariate": (
        "singling out a person by a combination of values",
        "rules of several values, written from the synthetic table, that match exactly one "
        "real person",
    ),
}

#: Metrics of the attack results (their ``metric`` field).
METRIC_NAMES: dict[str, tuple[str, str]] = {
    "auc": (
        "ROC AUC of the guess",
        "how often the attack ranks a person who was used above one who was not: 0.5 is a "
        "coin toss, 1 always right",
    ),
    "success_rate_difference": (
        "success on training people minus on held-out people",
        "0: the synthetic table helps the attacker no more against people it was made from "
        "than against anyone else",
    ),
    "share_of_synthetic_rows_closer_to_train": (
        "share closer to training rows",
        "see the attack of that name",
    ),
    "share_of_synthetic_rows_identical_to_a_training_row": (
        "share identical to training rows",
        "see the attack of that name",
    ),
}

#: Statistical terms the page uses, by the short name it shows them with.
TERMS: dict[str, tuple[str, str]] = {
    "ε (epsilon), δ (delta)": (
        "the differential-privacy guarantee",
        "adding or removing one person changes the chance of any outcome of the release by at "
        "most a factor e^ε, except with probability δ; smaller is more private",
    ),
    "95% CI": (
        "95% confidence interval",
        "the range the true value lies in with 95% confidence, given how many people were "
        "tested; the policy judges the lower end",
    ),
    "baseline": (
        "what the attack achieves without the synthetic table's help",
        "e.g. on held-out people the generator never saw",
    ),
    "TVD": (
        "total variation distance",
        "half the sum of the differences in shares between real and synthetic, over the "
        "categories of one column (1-way), two (2-way) or three (3-way): 0 identical, 1 disjoint",
    ),
    "KL divergence": (
        "Kullback-Leibler divergence, in nats",
        "how surprised someone expecting the synthetic shares is by the real ones; 0 identical",
    ),
    "association difference": (
        "difference in how strongly two columns go together",
        "Cramér's V or Pearson correlation, real minus synthetic, averaged over column pairs",
    ),
    "independent-columns baseline": (
        "a table whose columns are drawn each on its own",
        "keeps every column's real shares and no relationship between columns: the score a "
        "useful synthetic table must beat",
    ),
    "C2ST AUC": (
        "classifier two-sample test",
        "how well a classifier tells synthetic rows from real ones: 0.5 cannot, 1 always can",
    ),
    "pMSE": (
        "propensity mean squared error",
        "the same test's average confidence: 0 cannot tell the tables apart, 0.25 always can",
    ),
    "TSTR": (
        "train on synthetic, test on real",
        "a model trained on synthetic rows, scored on real held-out rows, against one trained "
        "on real rows",
    ),
    "DCR": (
        "distance to the closest record",
        "how far a synthetic row is from the most similar real row",
    ),
    "NNDR": (
        "nearest-neighbour distance ratio",
        "distance to the closest real row over distance to the second closest: near 0 means "
        "one real row stands out as the match",
    ),
    "canary audit": (
        "planted fake people",
        "fake rows are planted at random and an attacker guesses which were planted; how well "
        "it guesses gives a lower bound on the real ε",
    ),
    "loose / consistent / VIOLATION": (
        "the canary audit's outcome",
        "loose: the lower bound is far below the claimed ε, so the audit cannot say the claim "
        "is tight (close to the true privacy loss); this is normal, since DP bounds the worst "
        "case and a sound generator leaks less. consistent: the lower bound comes close to "
        "the claim, which is then nearly tight. VIOLATION: the lower bound is above the claim: "
        "the release leaks more than it says",
    ),
    "small-cell suppression": (
        "withholding small counts",
        "no share of the real table is shown for a category or bin of fewer real rows than "
        "the policy's minimum",
    ),
}

#: Terms of the bias section, listed when a report has one (protected groups were named).
GROUP_TERMS: dict[str, tuple[str, str]] = {
    "protected group": (
        "a category of a column the custodian names as protected (e.g. sex, race)",
        "the bias section compares its share of the rows and, with a target, a model's score "
        "on its rows, real against synthetic",
    ),
    "shrunk / served worse": (
        "the bias section's flags",
        "shrunk: the group's synthetic share is below the policy's ratio of its real share; "
        "served worse: on the group's real held-out rows, a model trained on synthetic rows "
        "scores more than the policy's margin below one trained on real rows",
    ),
}

#: Terms of the regulator section, listed when a report has one (format 2 on).
REGULATOR_TERMS: dict[str, tuple[str, str]] = {
    "privacy profile": (
        "epsilon at each delta",
        "one (epsilon, delta) guarantee holds for every delta: a smaller delta (a smaller "
        "chance the bound fails) costs a larger epsilon; the table lists the pairs",
    ),
    "zCDP": (
        "zero-concentrated differential privacy",
        "how the Gaussian noise of marginal-based generators is accounted (a parameter rho); "
        "it converts to an (epsilon, delta) guarantee at any delta",
    ),
    "WP29 criteria": (
        "singling out, linkability, inference",
        "the three risks the EU's Article 29 Working Party (Opinion 05/2014) asks an "
        "anonymisation to address; the report maps each to the attacks that test it",
    ),
}

_BRACKET = re.compile(r"^(?P<base>[^\[]+)\[(?P<col>.*)\]$")


def _entry(name: str) -> tuple[str, str] | None:
    m = _BRACKET.match(name)
    base, col = (m["base"], m["col"]) if m else (name, "")
    entry = ATTACK_NAMES.get(base) or METRIC_NAMES.get(base)
    if entry is None:
        return None
    return entry[0].format(col=col), entry[1].format(col=col)


def known(name: str) -> bool:
    """Whether ``name`` (an attack or metric) has a plain name."""
    return _entry(name) is not None


def plain(name: str) -> str:
    """The plain name of an attack or metric (underscores as spaces for an unknown one).

    Examples
    --------
    >>> plain("dcr_closer_to_train")
    'share of synthetic rows closer to a training row than to a held-out one'
    >>> plain("attribute_inference_nn[income]")
    'guessing income from the closest synthetic row'
    """
    entry = _entry(name)
    return entry[0] if entry else name.replace("_", " ")


def glossary(
    names: list[str], *, groups: bool = False, regulator: bool = False
) -> list[tuple[str, str, str]]:
    """(plain name, technical name, meaning) for each of ``names`` (attacks and metrics, in
    order, once each), then every statistical term of :data:`TERMS`, and those of
    :data:`GROUP_TERMS` and :data:`REGULATOR_TERMS` when the page has those sections."""
    rows = [(plain(n), n, (_entry(n) or ("", ""))[1]) for n in dict.fromkeys(names)]
    terms = {
        **TERMS,
        **(GROUP_TERMS if groups else {}),
        **(REGULATOR_TERMS if regulator else {}),
    }
    return rows + [(term, technical, meaning) for term, (technical, meaning) in terms.items()]
