"""The epsilon story and the grouped charge appendix of the HTML report."""

from decimal import ROUND_CEILING, ROUND_FLOOR

import pytest

from privsynth.errors import ConfigError
from privsynth.report.render_html import charges_appendix, epsilon_story, render_html, sig3

REPORT = {
    "dp_guarantee": {
        "epsilon": 1.0,
        "delta": 1e-9,
        "epsilon_spent": 0.99991,
        "charges": [{"type": "PureDP", "epsilon": 0.01}]
        + [{"type": "ZCDP", "rho": 4.6781e-05}] * 45
        + [
            {
                "type": "SubsampledGaussian",
                "sample_rate": 0.0123456,
                "noise_multiplier": 1.1,
                "steps": 300,
            }
        ],
    },
    "ledger": {
        "dataset_id": "adult",
        "cap": {"epsilon": 3.0, "delta": 1e-6},
        "spent_after": {"epsilon": 0.79012, "delta": 1e-6},
        "remaining": {"epsilon": 2.20988, "delta": 1e-6},
    },
}


@pytest.mark.parametrize(
    ("x", "rounding", "expected"),
    [
        (0.79012, ROUND_CEILING, "0.791"),
        (0.79, ROUND_CEILING, "0.79"),  # exact: not pushed up by float noise
        (2.20988, ROUND_FLOOR, "2.2"),
        (4.6781e-05, ROUND_CEILING, "4.68e-05"),
        (0.99991, ROUND_CEILING, "1"),
        (0.0, ROUND_CEILING, "0"),
    ],
)
def test_sig3_rounds_at_three_significant_digits_in_the_given_direction(x, rounding, expected):
    assert sig3(x, rounding=rounding) == expected


def test_the_epsilon_story_states_requested_spent_and_total_each_at_its_delta():
    html = epsilon_story(REPORT)
    rows = html.split("<tr>")[2:]
    assert "requested" in rows[0] and "<td>1</td><td>1e-09</td>" in rows[0]
    assert "spent by this release" in rows[1] and "<td>≤ 1</td><td>1e-09</td>" in rows[1]
    assert "every release so far" in rows[2] and "≤ 0.791 of the cap" in rows[2]
    assert rows[2].endswith("<td>1e-06</td></tr>")
    assert "≥ 2.2</td>" in rows[3]
    assert "smaller ε at a larger δ" in html


def test_identical_charges_collapse_into_one_row_with_a_count_most_frequent_first():
    html = charges_appendix(REPORT)
    rows = html.split("<tbody>")[1].split("<tr>")[1:]
    assert len(rows) == 3
    assert (
        rows[0]
        == "<td>45 ×</td><td>zCDP mechanism (e.g. Gaussian noise)</td><td>ρ 4.68e-05</td></tr>"
    )
    assert "<td>1 ×</td>" in rows[1] and "ε 0.01" in rows[1]
    assert "sample rate 0.0123" in rows[2] and "steps 300" in rows[2]


def test_an_unknown_paper_is_refused():
    with pytest.raises(ConfigError, match="paper"):
        render_html(REPORT, paper="a5")


def test_the_attacks_say_what_they_sampled():
    from privsynth.report.render_html import _sampled

    settings = {
        "synthetic_rows": 1_600_000,
        "synthetic_rows_attacked": 50_000,
        "reference_rows_at_most": 50_000,
        "n_targets_requested": 5000,
    }
    text = _sampled(settings)
    assert "a uniform sample of 50,000 of the 1,600,000 synthetic rows" in text
    assert "at most 50,000 training rows" in text and "5,000 targets" in text
    assert "all 900 synthetic rows" in _sampled(
        {**settings, "synthetic_rows": 900, "synthetic_rows_attacked": 900}
    )
    assert _sampled({"synthetic_rows": 900}) == ""  # a report made before the audit sampled
