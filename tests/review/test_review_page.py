"""The review page supports a sound decision: it says in words which rule put the request in
review and with which thresholds, puts the request, the candidate and the runner-up side by side
with each difference marked, and explains each field's evidence."""

from __future__ import annotations

import re
from datetime import date

import pytest

from taxgate.identify.decision import RULE_NAMES
from taxgate.identify.evidence import level_meaning, why
from taxgate.policy import load_policies, policy_in_force

from support import console, queued_reviews

pytestmark = pytest.mark.slow  # the review page in a browser


def test_the_case_says_why_it_is_in_review_with_the_policy_thresholds(service, small_batch):
    queue = queued_reviews(service, small_batch)
    browser, _ = console(service, "officer")
    case = service.client.get(
        f"/api/reviews/{queue[0]['decision']}", headers=service.auth("officer")
    ).json()
    rule = policy_in_force(load_policies(), date.today()).identification
    assert case["thresholds"] == {
        "threshold": rule.threshold,
        "review": rule.review,
        "margin": rule.margin,
    }
    assert case["why"] and case["why"][-1].startswith("An officer decides, not the rule")
    page = browser.get(f"/reviews/{queue[0]['decision']}").text
    text = re.sub(r"<[^>]+>", " ", page)
    assert "Why it is in review" in text and f"review line of {rule.review:g}" in text
    assert f"threshold for a positive identification {rule.threshold:g}" in text
    # the weights are read as a person reads them, not as floats
    assert not re.search(r"\d+\.\d{4,}", text)
    # the runner-up's record is there beside the candidate's, not only its TIN
    with_runner = next(q for q in queue if q["runner_up_weight"] is not None)
    other = service.client.get(
        f"/api/reviews/{with_runner['decision']}", headers=service.auth("officer")
    ).json()
    runner = other["runner_up"]["records"][0]
    shown = re.sub(r"<[^>]+>", " ", browser.get(f"/reviews/{with_runner['decision']}").text)
    assert runner["last_name"] in shown and runner["date_of_birth"] in shown
    # every field's level is said in words
    for name, field in case["fields"].items():
        assert level_meaning(name, field["level"]) in text.replace("&#39;", "'"), name


def test_a_misspelt_surname_is_named_as_the_cause_and_marked():
    evidence = {
        "decision": "ID_WEAK (review)",
        "names_agree": False,
        "middle_initial_conflict": False,
        "candidate": {"weight": 70.0, "address_on_record": True},
        "runner_up": {"tin": "", "weight": None},
        "fields": {
            "given": {"level": 6, "weight": 5.0, "tf": 0.0},
            "surname": {"level": 3, "weight": 7.0, "tf": 0.0},
        },
    }
    lines = why(evidence, threshold=20, review=12, margin=6)
    assert lines[0] == RULE_NAMES["names_differ"].words
    assert (
        lines[1]
        == "In the model: the last name is one letter apart (a letter wrong, dropped or added) (level 3 of 6)."
    )
    assert "at or above the review line of 12" in lines[2]
    # a weight over the threshold is not the cause and is not called one
    assert "below the threshold" not in " ".join(lines)
    ambiguous = why(
        {**evidence, "decision": "ID_AMBIGUOUS", "runner_up": {"tin": "1", "weight": 66.0}},
        20,
        12,
        6,
    )
    assert ambiguous == [
        RULE_NAMES["runner_up_close"].words,
        "The candidate's weight is 70.0 and the runner-up's 66.0, 4.0 apart, less than the margin of 6.",
    ]


def test_differences_are_marked_in_the_page(service, small_batch):
    queue = queued_reviews(service, small_batch)
    browser, _ = console(service, "officer")
    for item in queue:
        case = service.client.get(
            f"/api/reviews/{item['decision']}", headers=service.auth("officer")
        ).json()
        asked, filed = case["request"], case["candidate"]["records"][0]
        if (asked.get("last_name") or "").casefold() != filed["last_name"].casefold():
            page = browser.get(f"/reviews/{item['decision']}").text
            row = page[page.index(">Last name<") :].split("</tr>")[0]
            assert (
                'class="differs"' in row
                and 'aria-label="differs"' in row
                and filed["last_name"] in row
            )
            return
    raise AssertionError("no request in review has a last name that differs from the candidate's")


def test_a_value_is_marked_as_differing_only_when_identification_would_compare_it_unequal():
    """The side-by-side ≠ compares as the model does (standardised), so an officer is not sent
    after "#108" against "APT 108" or a date written another way, and is after another unit."""
    from taxgate.service.reviews import _differs

    home = {"street": "4045 Lake Lane", "city": "Omaha", "state": "NE", "zip": "68129"}
    assert not _differs(
        {**home, "unit": "#108"}, {**home, "street": "4045 LAKE LN", "unit": "APT 108"}, ["unit"]
    )
    assert _differs({**home, "unit": "#108"}, {**home, "unit": "APT 109"}, ["unit"])
    assert not _differs({"date_of_birth": "03/09/1972"}, {"date_of_birth": "1972-03-09"}, ["dob"])
    assert _differs({"last_name": "Floores"}, {"last_name": "FLORES"}, ["surname"])
    assert not _differs({"last_name": "Floores"}, {}, ["surname"])  # no runner-up: nothing to mark
