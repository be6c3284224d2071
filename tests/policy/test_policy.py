from __future__ import annotations

from datetime import date

import pytest

from taxgate.normalize.statute import parse_citation
from taxgate.policy import POLICY_DIR, PolicyError, load_policies, load_policy, policy_in_force


def test_demo_policy_values_match_the_design():
    policy = policy_in_force(load_policies(), date(2025, 7, 25))
    t = policy.thresholds
    assert (
        t.tax_year_min,
        t.relevance_min_chars,
        t.relevance_max_repeats,
        t.official_max_cases,
    ) == (2000, 40, 10, 50)
    assert policy.disclosable_items == {"last_known_address"}
    signers = {(s.name, s.title) for s in policy.agencies["DHS-ICE"].signers}
    assert signers == {
        ("Jordan Avery", "Secretary of Homeland Security"),
        ("Casey Morgan", "Director, U.S. Immigration and Customs Enforcement"),
    }
    agreement = policy.agreement_for("DHS-ICE", date(2025, 4, 7))
    assert agreement and agreement.period.effective_to == date(2027, 12, 31)
    assert policy.agreement_for("DHS-ICE", date(2025, 4, 6)) is None
    kinds = {str(s.citation): s.kind for s in policy.statutes}
    for c in (
        "8 U.S.C. § 1253(a)(1)",
        "8 U.S.C. § 1306",
        "8 U.S.C. § 1324",
        "8 U.S.C. § 1325(a)",
        "8 U.S.C. § 1326",
        "18 U.S.C. § 911",
        "18 U.S.C. § 1028",
        "18 U.S.C. § 1546",
    ):
        assert kinds[c] == "criminal", c
    for c in ("8 U.S.C. § 1227", "8 U.S.C. § 1229a", "8 U.S.C. § 1231"):
        assert kinds[c] == "civil", c
    for n in range(7201, 7208):
        assert kinds[f"26 U.S.C. § {n}"] == "tax_administration"


def test_most_specific_catalog_entry_wins():
    policy = load_policies()[0]
    assert policy.statute_for(parse_citation("8 USC 1326(b)(2)")).kind == "criminal"
    assert policy.statute_for(parse_citation("8 USC 1253")) is None


def test_version_in_force_is_chosen_by_date(tmp_path):
    text = next(POLICY_DIR.glob("*.toml")).read_text(encoding="utf-8")
    (tmp_path / "a.toml").write_text(text, encoding="utf-8")
    later = (
        text.replace('version = "demo-2025.1"', 'version = "demo-2026.1"')
        .replace(
            "effective_from = 2025-01-01\neffective_to = 2099-12-31\ndescription",
            "effective_from = 2026-01-01\neffective_to = 2099-12-31\ndescription",
        )
        .replace("relevance_min_chars = 40", "relevance_min_chars = 60")
    )
    (tmp_path / "b.toml").write_text(later, encoding="utf-8")
    versions = load_policies(tmp_path)
    assert policy_in_force(versions, date(2025, 6, 1)).version == "demo-2025.1"
    chosen = policy_in_force(versions, date(2026, 6, 1))
    assert chosen.version == "demo-2026.1" and chosen.thresholds.relevance_min_chars == 60
    with pytest.raises(PolicyError, match="no policy version is in force"):
        policy_in_force(versions, date(2024, 1, 1))


@pytest.mark.parametrize(
    "text, message",
    [
        ("not = [toml", "not valid TOML"),
        ("[policy]\nname='x'\n", "policy.effective_from: Field required"),
    ],
)
def test_bad_policy_files(tmp_path, text, message):
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match=message):
        load_policy(path)


@pytest.mark.parametrize(
    "old, new, message",
    [
        (
            "threshold = 20.0",
            'threshold = "high"',
            "identification.threshold: Input should be a valid number",
        ),
        (
            "max_field_chars = 4000",
            "max_field_chars = -5",
            "thresholds.max_field_chars: Input should be greater than",
        ),
        ("official_max_cases = 50", "official_max_cases = 0", "thresholds.official_max_cases"),
        ("margin = 6.0", "margin = nan", "identification.margin"),
        ("review = 12.0", "review = 30.0", "review must not be above threshold"),
        (
            "relevance_max_repeats = 10",
            "relevance_max_repeats = 10\nrelevance_max_repaets = 3",
            "relevance_max_repaets: Extra",
        ),
        ('kind = "criminal"', 'kind = "felony"', "statutes.0.kind"),
        (
            "effective_to = 2027-12-31",
            "effective_to = 2020-12-31",
            "effective_to is before effective_from",
        ),
        (
            'version = "demo-2025.1"',
            'version = "demo 2025 / evil"',
            "policy.version: String should match",
        ),
    ],
)
def test_a_policy_value_that_would_misbehave_is_refused_at_load_naming_its_field(
    tmp_path, old, new, message
):
    """A policy is checked by its schema when it is read: one line naming the field, never a
    traceback at the first batch, never a limit that refuses every row."""
    text = next(POLICY_DIR.glob("*.toml")).read_text(encoding="utf-8")
    assert old in text
    (tmp_path / "p.toml").write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(PolicyError, match=message) as caught:
        load_policy(tmp_path / "p.toml")
    assert "\n" not in str(caught.value)


def test_a_policy_is_its_content_not_only_its_name(tmp_path):
    """Two different files calling themselves one version are refused together, and each batch
    records the content's digest beside the name."""
    text = next(POLICY_DIR.glob("*.toml")).read_text(encoding="utf-8")
    (tmp_path / "a.toml").write_text(text, encoding="utf-8")
    (tmp_path / "b.toml").write_text(
        text.replace("official_max_cases = 50", "official_max_cases = 5000"), "utf-8"
    )
    with pytest.raises(PolicyError, match="both call themselves 'demo-2025.1' but differ"):
        load_policies(tmp_path)
    one, other = load_policy(tmp_path / "a.toml"), load_policy(tmp_path / "b.toml")
    assert one.version == other.version and one.recorded != other.recorded
    assert one.recorded.startswith("demo-2025.1@sha256:") and len(one.recorded) <= 64


def test_bad_statute_in_catalog(tmp_path):
    text = (
        next(POLICY_DIR.glob("*.toml"))
        .read_text(encoding="utf-8")
        .replace('citation = "8 U.S.C. § 1306"', 'citation = "the immigration laws"')
    )
    (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError, match="not a statute citation"):
        load_policy(tmp_path / "p.toml")


def test_the_nickname_table_is_the_release_the_policy_names(tmp_path):
    """A package upgrade cannot change who agrees with whom under a policy version: the policy
    names the table's release, and another one installed is refused in one line."""
    text = next(POLICY_DIR.glob("*.toml")).read_text(encoding="utf-8")
    assert 'standard_nicknames = "nicknames==1.0.1"' in text
    policy = load_policy(next(POLICY_DIR.glob("*.toml")))
    assert ("willie", "william") in policy.identification.nicknames  # from the table
    assert ("pepe", "jose") in policy.identification.nicknames  # from the policy's own list
    (tmp_path / "p.toml").write_text(
        text.replace("nicknames==1.0.1", "nicknames==9.9"), encoding="utf-8"
    )
    with pytest.raises(
        PolicyError,
        match=r"names the nickname table nicknames==9.9, but nicknames 1.0.1 is installed",
    ) as caught:
        load_policy(tmp_path / "p.toml")
    assert "\n" not in str(caught.value)
