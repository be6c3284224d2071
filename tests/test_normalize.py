from __future__ import annotations

import pytest

from taxgate.normalize.address import is_placeholder, parse_street, state_code, zip5
from taxgate.normalize.name import name_tokens
from taxgate.normalize.statute import parse_citation
from taxgate.policy import load_policies

PHRASES = load_policies()[0].address_placeholders


@pytest.mark.parametrize(
    "text, expected",
    [
        ("8 USC 1253(a)(1)", "8 U.S.C. § 1253(a)(1)"),
        ("8 U.S.C. § 1253(a)(1)", "8 U.S.C. § 1253(a)(1)"),
        ("Title 8, Section 1253(a)(1)", "8 U.S.C. § 1253(a)(1)"),
        ("8 U.S.C. §1326(a)", "8 U.S.C. § 1326(a)"),
        ("18 U.S.C. 1546", "18 U.S.C. § 1546"),
        ("8 usc 1229A", "8 U.S.C. § 1229a"),
        ("Title 8 U.S.C. § 1325 (a)", "8 U.S.C. § 1325(a)"),
    ],
)
def test_citations_read_robustly(text, expected):
    assert str(parse_citation(text)) == expected


@pytest.mark.parametrize("text", ["INA 243", "1326", "illegal entry", "", "8 CFR 241.1"])
def test_non_citations_are_not_guessed(text):
    assert parse_citation(text) is None


@pytest.mark.parametrize(
    "value", ["Failed to Provide", "UNKNOWN ADDRESS", "NA NA", "n/a", "N/A N/A", "None", "Not provided", "00000", "xxx", "-"]
)
def test_placeholders(value):
    assert is_placeholder(value, PHRASES)


@pytest.mark.parametrize("value", ["", "12 Unknown Creek Rd", "Nanaimo", "PO Box 7", "Apt 4"])
def test_not_placeholders(value):
    assert not is_placeholder(value, PHRASES)


def test_street_lines_standardise_to_one_form():
    forms = [("123 Main Street", "Apt 4B"), ("123 MAIN ST", "#4B"), ("123 main st apt 4b", ""), ("123 Main St. Unit 4-B", "")]
    assert {parse_street(s, u) for s, u in forms} == {parse_street("123 MAIN ST", "APT 4B")}
    assert parse_street("123 MAIN ST", "APT 4B").line == "123 MAIN ST"


def test_po_box_and_non_streets():
    assert parse_street("P.O. Box 77").kind == "po_box"
    assert parse_street("Failed to Provide").kind == ""
    assert parse_street("Main Street").kind == ""


def test_zip_and_state():
    assert (zip5("78701-1234"), zip5("787011234"), zip5("00000"), zip5("7870")) == ("78701", "78701", "", "")
    assert (state_code("Texas"), state_code("tx"), state_code("Texaz")) == ("TX", "TX", "")


def test_name_tokens_fold_accents_particles_and_hyphens():
    assert name_tokens("María de la Cruz-Núñez") == name_tokens("MARIA CRUZ NUNEZ") == ("maria", "cruz", "nunez")
