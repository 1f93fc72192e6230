"""The regulator-ready blocks of report format 2, and format-1 releases still verifying and
rendering as they did."""

import copy
import hashlib
import json
import math
import shutil
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from privsynth.budget.analysis import epsilon_spent
from privsynth.budget.events import ZCDP, ApproxDP, PureDP, event_from_dict
from privsynth.errors import ConfigError, SignatureError
from privsynth.pipeline.config import ReleaseConfig
from privsynth.report import REPORT_JSON
from privsynth.report.regulator import (
    NOT_STATED,
    PROFILE_DELTAS,
    RegulatorInputs,
    privacy_profile,
    regulator_blocks,
    section,
    unit_record,
)
from privsynth.report.render import render_release
from privsynth.report.render_html import render_html
from privsynth.report.verify import validate_report, verify_release
from privsynth.schema import UnitOfPrivacy

V1 = Path(__file__).resolve().parents[1] / "fixtures" / "report_v1"


@pytest.fixture(scope="module")
def v1_report():
    return json.loads((V1 / "release" / REPORT_JSON).read_text("utf-8"))


# ---------------------------------------------------------------- format 1 still reads


def test_a_format_1_release_still_verifies_and_renders_byte_for_byte_as_before(tmp_path):
    release = tmp_path / "release"
    shutil.copytree(V1 / "release", release)
    verified = verify_release(release)
    assert verified.report["report_format"] == "privsynth-audit/1"
    rendered = render_release(release, out=tmp_path / "out")
    # The SHA-256 of the page the code before format 2 rendered from this release.
    expected = (V1 / "rendered" / "audit.html.sha256").read_text("utf-8").strip()
    assert hashlib.sha256(rendered.html.read_bytes()).hexdigest() == expected


def test_a_format_1_page_has_no_regulator_section(v1_report):
    assert section(v1_report) == []
    assert "For regulators" not in render_html(v1_report)


def test_a_report_claiming_format_2_without_the_regulator_blocks_is_refused(v1_report):
    claimed = dict(v1_report, report_format="privsynth-audit/2")
    with pytest.raises(SignatureError, match="regulator"):
        validate_report(claimed)


def test_an_unknown_report_format_is_refused_by_name(v1_report):
    with pytest.raises(SignatureError, match="privsynth-audit/9"):
        validate_report(dict(v1_report, report_format="privsynth-audit/9"))


def test_the_format_1_report_plus_its_blocks_is_a_valid_format_2_report(v1_report):
    report = dict(v1_report, report_format="privsynth-audit/2")
    report["regulator"] = regulator_blocks(report, RegulatorInputs())
    validate_report(json.loads(json.dumps(report)))  # as it reads back from audit.json
    html = render_html(report)
    for heading in ("Privacy profile", "WP29 criteria", "HIPAA expert determination"):
        assert heading in html


# ---------------------------------------------------------------- privacy profile


def _gaussian_delta(rho: float, eps: float) -> float:
    """The exact delta(eps) of a Gaussian mechanism of rho-zCDP (Balle & Wang 2018), an
    independent check on the accountant: mu = sqrt(2 rho)."""
    mu = math.sqrt(2 * rho)

    def phi(x: float) -> float:
        return 0.5 * math.erfc(-x / math.sqrt(2))

    return phi(-eps / mu + mu / 2) - math.exp(eps) * phi(-eps / mu - mu / 2)


def test_each_profile_epsilon_is_sound_for_a_gaussian_at_its_delta():
    rho = 0.02
    profile = privacy_profile([{"type": "ZCDP", "rho": rho}])
    assert [p["delta"] for p in profile["points"]] == list(PROFILE_DELTAS)
    for p in profile["points"]:
        assert _gaussian_delta(rho, p["this_release"]) <= p["delta"]
        # and not wastefully loose: 1.2 x the exact epsilon's delta is well above delta
        assert _gaussian_delta(rho, p["this_release"] / 1.2) > p["delta"]


def test_a_smaller_delta_never_gives_a_smaller_epsilon():
    charges = [{"type": "ZCDP", "rho": 1e-3}] * 30 + [{"type": "PureDP", "epsilon": 0.05}]
    eps = [p["this_release"] for p in privacy_profile(charges)["points"]]
    assert eps == sorted(eps) and eps[0] < eps[-1]


def test_pure_dp_charges_are_bounded_by_their_sum_at_every_delta():
    charges = [{"type": "PureDP", "epsilon": 0.1}] * 3
    for p in privacy_profile(charges)["points"]:
        assert 0 < p["this_release"] <= 0.3 + 1e-12


def test_no_finite_bound_where_the_approximate_pieces_alone_spend_the_delta():
    charges = [{"type": "ApproxDP", "epsilon": 0.1, "delta": 1e-9}, {"type": "ZCDP", "rho": 0.01}]
    points = {p["delta"]: p["this_release"] for p in privacy_profile(charges)["points"]}
    assert points[1e-8] is not None and points[1e-9] is None and points[1e-12] is None


def test_the_dataset_profile_composes_every_release_and_is_never_below_this_one():
    mine = [{"type": "ZCDP", "rho": 0.01}]
    others = (ZCDP(0.01), ZCDP(0.03), PureDP(0.2))
    profile = privacy_profile(mine, dataset_events=others)
    assert profile["dataset_included"]
    for p in profile["points"]:
        assert p["all_releases"] > p["this_release"]
        assert p["all_releases"] == epsilon_spent(list(others), p["delta"])
    alone = privacy_profile(mine)
    assert not alone["dataset_included"]
    assert all(p["all_releases"] is None for p in alone["points"])


def test_the_release_profile_at_the_release_delta_is_the_spend_the_report_states(v1_report):
    blocks = regulator_blocks(v1_report, RegulatorInputs())
    dp = v1_report["dp_guarantee"]
    at = {p["delta"]: p["this_release"] for p in blocks["privacy_profile"]["points"]}
    assert at[dp["delta"]] == dp["epsilon_spent"]
    events = [event_from_dict(c) for c in dp["charges"]]
    assert not any(isinstance(e, ApproxDP) for e in events)  # else the check means less


# ---------------------------------------------------------------- WP29, HIPAA, registry


def test_wp29_maps_each_attack_to_its_criterion_with_the_policy_threshold(v1_report):
    w = regulator_blocks(v1_report, RegulatorInputs())["wp29"]
    by = {c["criterion"]: c for c in w["criteria"]}
    assert list(by) == ["singling out", "linkability", "inference"]
    names = {c: [a["attack"] for a in by[c]["attacks"]] for c in by}
    assert all(n.startswith("singling_out_") for n in names["singling out"])
    assert names["linkability"] == ["linkability"]
    assert {n.split("_")[0] for n in names["inference"]} == {"attribute", "membership"}
    ran = {r["name"] for r in v1_report["attacks"]["attacks"] if r["passed"] is not None}
    assert ran == {n for ns in names.values() for n in ns}  # every judged attack, once
    t = v1_report["attacks"]["policy"]["thresholds"]["singling_out"]["max_advantage_lower"]
    assert f"exceeds {t:g}" in by["singling out"]["attacks"][0]["threshold"]


def test_a_failed_attack_fails_its_criterion_and_a_missing_one_is_not_tested(v1_report):
    report = copy.deepcopy(v1_report)
    attacks = report["attacks"]["attacks"]
    for r in attacks:
        if r["name"] == "linkability":
            r["passed"] = False
    report["attacks"]["attacks"] = [r for r in attacks if not r["name"].startswith("singling")]
    status = {
        c["criterion"]: c["status"]
        for c in regulator_blocks(report, RegulatorInputs())["wp29"]["criteria"]
    }
    assert status == {"singling out": "not tested", "linkability": "fail", "inference": "pass"}


def test_without_an_attack_suite_no_criterion_reads_as_passed(v1_report):
    report = dict(v1_report, attacks=None)
    blocks = regulator_blocks(report, RegulatorInputs())
    assert {c["status"] for c in blocks["wp29"]["criteria"]} == {"not tested"}
    assert blocks["wp29"]["dp_bound"] is not None  # the DP bound holds all the same
    method = blocks["hipaa_expert_determination"]["method"]
    assert "no empirical attack" in method and "policy" not in method
    assert blocks["threat_model"]["attacks_tested"] == []
    with_suite = regulator_blocks(v1_report, RegulatorInputs())["hipaa_expert_determination"]
    assert f"{len(v1_report['attacks']['attacks'])} empirical attacks" in with_suite["method"]


def test_what_a_person_states_reaches_the_hipaa_block_and_else_reads_not_stated(v1_report):
    stated = RegulatorInputs(
        recipient="Acme Research", signer_role="privacy officer", valid_until="2031-01-31"
    )
    report = dict(v1_report, regulator=regulator_blocks(v1_report, stated))
    h = report["regulator"]["hipaa_expert_determination"]
    assert (h["anticipated_recipient"], h["signer_role"]) == ("Acme Research", "privacy officer")
    assert h["valid_until"] == "2031-01-31" and h["date"] == v1_report["created"][:10]
    html = section(report)[0][1]
    assert "Acme Research" in html and "to 2031-01-31" in html and NOT_STATED in html
    blank = dict(v1_report, regulator=regulator_blocks(v1_report, RegulatorInputs()))
    page = section(blank)[0][1]
    hipaa = page.split("HIPAA expert determination")[1].split("Threat model")[0]
    assert hipaa.count(f"<td>{NOT_STATED}</td>") == 2  # recipient and signer's role
    assert f"to {NOT_STATED}" in hipaa


def test_the_registry_record_leaves_the_curator_to_the_custodian(v1_report):
    rec = regulator_blocks(v1_report, RegulatorInputs())["registry_record"]
    assert rec["basic"]["data_curators"] == [{"data_curator_name": None, "data_curator_type": None}]
    assert "basic.data_curators" in rec["to_fill"]
    assert rec["basic"]["data_product_type"] == "Synthetic data"
    params = rec["privacy_loss"]["privacy_parameters"]
    assert params == {
        "epsilon": v1_report["dp_guarantee"]["epsilon_spent"],
        "delta": v1_report["dp_guarantee"]["delta"],
    }
    assert rec["implementation"]["tool_version"] == v1_report["tool"]["version"]


def test_a_person_level_unit_is_recorded_with_its_column_and_k():
    unit = unit_record(UnitOfPrivacy(column="patient", max_rows=4), "person ...")
    assert unit == {
        "unit": "person",
        "column": "patient",
        "max_rows": 4,
        "description": "person ...",
    }
    assert unit_record(UnitOfPrivacy(), "row")["unit"] == "row"
    declared = UnitOfPrivacy(column="patient", rows_are_people=True)
    assert unit_record(declared, "row: ...")["unit"] == "row"


# ---------------------------------------------------------------- release options


def _config(tmp_path, **kw):
    return ReleaseConfig(out=tmp_path / "rel", **kw)


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({"valid_until": "31/12/2030"}, "YYYY-MM-DD"),
        ({"valid_until": "2030-02-30"}, "YYYY-MM-DD"),
        ({"valid_until": 20301231}, "YYYY-MM-DD"),
        ({"valid_until": "20301231"}, "YYYY-MM-DD"),
        ({"valid_until": datetime(2030, 12, 31, 12)}, "YYYY-MM-DD"),
        ({"valid_until": "2020-01-01"}, "before today"),
        ({"recipient": "   "}, "recipient"),
        ({"recipient": "two\nlines"}, "recipient"),
        ({"signer_role": "x" * 201}, "signer_role"),
        ({"signer_role": 7}, "signer_role"),
    ],
)
def test_a_bad_option_is_refused_in_one_line_naming_it(tmp_path, options, words):
    with pytest.raises(ConfigError, match=words) as exc:
        _config(tmp_path, **options)
    assert "\n" not in str(exc.value)


def test_the_options_are_stripped_and_dates_normalised(tmp_path):
    later = datetime.now(UTC).date() + timedelta(days=30)
    c = _config(tmp_path, recipient=" Acme ", signer_role="DPO", valid_until=later)
    assert (c.recipient, c.signer_role, c.valid_until) == ("Acme", "DPO", later.isoformat())
    assert _config(tmp_path, valid_until=later.isoformat()).valid_until == later.isoformat()
    assert _config(tmp_path).valid_until is None
    assert isinstance(date.fromisoformat(c.valid_until), date)
