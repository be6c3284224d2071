from __future__ import annotations

import pytest

from taxgate.normalize import address
from taxgate.normalize.address import is_placeholder, parse_street, state_code, street_kind, zip5
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
    "value",
    [
        "Failed to Provide",
        "UNKNOWN ADDRESS",
        "NA NA",
        "n/a",
        "N/A N/A",
        "None",
        "Not provided",
        "00000",
        "xxx",
        "-",
    ],
)
def test_placeholders(value):
    assert is_placeholder(value, PHRASES)


@pytest.mark.parametrize("value", ["", "12 Unknown Creek Rd", "Nanaimo", "PO Box 7", "Apt 4"])
def test_not_placeholders(value):
    assert not is_placeholder(value, PHRASES)


def test_street_lines_standardise_to_one_form():
    forms = [
        ("123 Main Street", "Apt 4B"),
        ("123 MAIN ST", "#4B"),
        ("123 main st apt 4b", ""),
        ("123 Main St. Unit 4-B", ""),
    ]
    assert {parse_street(s, u) for s, u in forms} == {parse_street("123 MAIN ST", "APT 4B")}
    assert parse_street("123 MAIN ST", "APT 4B").line == "123 MAIN ST"


def test_po_box_and_non_streets():
    assert parse_street("P.O. Box 77").kind == "po_box"
    assert parse_street("Failed to Provide").kind == ""
    assert parse_street("Main Street").kind == ""


# Street lines of every kind the rules meet: numbered, spelled-out types, PO boxes in several
# spellings, a unit in the street field, words only, digits only, placeholders, what the tagger
# cannot label (repeated labels), and forms scourgify fails on (then our fallback reads its tags).
_STREETS = [
    ("123 Main St", ""),
    ("123 MAIN STREET", "Apt 4B"),
    ("55 w. oak avenue", "#12"),
    ("P.O. Box 77", ""),
    ("PO BOX", ""),
    ("Box 12", ""),
    ("Main Street", ""),
    ("31", "basement apt"),
    ("", "APT 4"),
    ("00000", ""),
    ("Failed to Provide", ""),
    ("NA NA", ""),
    ("123 Main St Main St", ""),
    ("2767 MAIN Boulevard apt.", ""),
    ("3832 mission court Unit", ""),
    ("123 MAIN UN A", ""),
    ("1 RR 2 BOX 5", ""),
    ("4698 N 2ND DR", "Unit 9"),
    ("12 ½ ELM ST", ""),
    ("ONE MAIN ST", ""),
    ("123 Main St, Apt 4", "Apt 4"),
    ("#5 OAK LN", ""),
]


@pytest.mark.parametrize("street, unit", _STREETS)
def test_the_kind_the_rules_read_is_the_kind_identification_parses(street, unit):
    """The address rules read `street_kind` (tags only) where identification reads `parse_street`
    (tags, then standardised): one can never say street where the other says none."""
    assert street_kind(street, unit) == parse_street(street, unit).kind


@pytest.mark.parametrize("street, unit", _STREETS)
def test_a_parse_does_not_depend_on_what_was_parsed_before(street, unit):
    """The tags are cached for the two readers of one request, and scourgify rewrites the tags it is
    given even when it then fails ("2767 MAIN Boulevard apt." is then read from what it rewrote): a
    parse from cached tags must equal a parse from scratch."""
    address._tag.cache_clear()
    parse_street.cache_clear()
    fresh = parse_street(street, unit)
    street_kind(street, unit)  # the rules' look first, as in a batch
    parse_street.cache_clear()
    assert parse_street(street, unit) == fresh
    parse_street.cache_clear()
    assert parse_street(street, unit) == fresh


def test_a_street_type_scourgify_fails_on_is_still_abbreviated():
    assert parse_street("2767 MAIN Boulevard apt.").line == "2767 MAIN BLVD"


def test_zip_and_state():
    assert (zip5("78701-1234"), zip5("787011234"), zip5("00000"), zip5("7870")) == (
        "78701",
        "78701",
        "",
        "",
    )
    assert (state_code("Texas"), state_code("tx"), state_code("Texaz")) == ("TX", "TX", "")


def test_name_tokens_fold_accents_particles_and_hyphens():
    assert (
        name_tokens("María de la Cruz-Núñez")
        == name_tokens("MARIA CRUZ NUNEZ")
        == ("maria", "cruz", "nunez")
    )


def test_letters_without_an_accent_to_drop_are_spelled_in_ascii_not_lost():
    from taxgate.normalize.text import ascii_text, fold

    assert ascii_text("Łódź Straße, Øster-Æbelø") == "Lodz Strasse, Oster-AEbelo"
    assert fold("Łukasz Ðuric") == "lukasz duric"  # not "ukasz uric"
    assert parse_street("12 Łódź St") == parse_street("12 Lodz St")


@pytest.mark.parametrize(
    "street, city, given, surname",
    [
        ("12 Łódź St", "Kraków", "Łukasz", "Żółć"),
        ("9 Øster Allé", "Århus", "Søren", "Ødegård"),
        ("4 Straße Rd Apt ß", "Münster", "Æsa", "Œuvre"),
        ("1 Улица St", "Москва", "Иван", "Петров"),
        ("7 北京 Ave", "東京", "李", "王"),
        ("3 Ħal Tarxien St", "Ħamrun", "Đorđe", "Þór"),
    ],
)
def test_every_compared_value_is_ascii(street, city, given, surname):
    """DuckDB counts a string's edits in bytes and Spark in characters; for the engines to agree on
    every typing error, nothing the comparisons read may hold a character that is not ASCII."""
    from taxgate.identify.features import address_features, name_features

    values = (
        *address_features(street, "", city, "IL", "60601"),
        *name_features(given, "", surname),
    )
    assert all(v is None or v.isascii() for v in values), values


# The name tests as the plain statement of their definition (every operand of every OR): the
# shipped macros are written as CASE arms, cheapest first, for speed, and must say the same.
_PLAIN = (
    """CREATE MACRO plain_typo(a, b) AS a = b OR (len(a) >= 3 AND len(b) >= 3
           AND damerau_levenshtein(a, b) <= CASE WHEN least(len(a), len(b)) >= 6 THEN 2 ELSE 1 END)""",
    """CREATE MACRO plain_part(a, b) AS len(a) > 0 AND len(b) > 0 AND (
           plain_typo(array_to_string(a, ''), array_to_string(b, ''))
           OR (len(a) <= len(b) AND list_bool_and(list_transform(a, lambda x:
               list_bool_or(list_transform(b, lambda y: plain_typo(x, y))))))
           OR (len(b) < len(a) AND list_bool_and(list_transform(b, lambda y:
               list_bool_or(list_transform(a, lambda x: plain_typo(x, y)))))))""",
    """CREATE MACRO plain_close(ga, sa, gb, sb) AS (plain_part(ga, gb) AND plain_part(sa, sb))
           OR (plain_part(ga, sb) AND plain_part(sa, gb))""",
    """CREATE MACRO plain_agree(ga, sa, gb, sb) AS
           (tg_given_agree(ga, gb) AND tg_surnames_agree(sa, sb))
           OR (tg_given_agree(ga, sb) AND tg_surnames_agree(sa, gb))
           OR (len(ga || sa) > 0 AND ga || sa = gb || sb)""",
)


@pytest.mark.slow  # every pair of a large name list
def test_the_name_macros_say_what_their_plain_definition_says():
    import random

    import duckdb

    from taxgate.normalize.name import define_names_agree

    con = duckdb.connect()
    define_names_agree(con)
    for macro in _PLAIN:
        con.execute(macro)
    rnd = random.Random(16)
    # Short words over few letters, so that typing errors, swaps and near misses are common.
    words = [
        "cat",
        "cart",
        "cast",
        "bat",
        "ana",
        "anna",
        "ann",
        "maria",
        "marie",
        "mario",
        "jon",
        "jonas",
        "lopez",
        "lopes",
        "garcia",
        "garcai",
        "de",
        "la",
        "ab",
        "xo",
    ]

    def part() -> list[str]:
        return rnd.sample(words, rnd.choice((0, 1, 1, 1, 2, 2, 3)))

    def near(ga: list[str], sa: list[str]) -> tuple[list[str], list[str]]:
        """Another writing of the same name, about half the time: swapped, reordered, a part dropped."""
        if rnd.random() < 0.5:
            return part(), part()
        gb, sb = list(ga), list(sa)
        if rnd.random() < 0.3:
            gb, sb = sb, gb
        if rnd.random() < 0.3:
            sb.reverse()
        if len(sb) > 1 and rnd.random() < 0.3:
            sb.pop()
        return gb, sb

    rows = [(ga, sa, *near(ga, sa)) for ga, sa in ((part(), part()) for _ in range(4000))]
    rows.append(
        (["cart"], ["bat"], ["cat"], ["cast"])
    )  # given a typo of both, surnames apart: the swap decides
    con.execute("CREATE TABLE pairs (ga VARCHAR[], sa VARCHAR[], gb VARCHAR[], sb VARCHAR[])")
    con.executemany("INSERT INTO pairs VALUES (?, ?, ?, ?)", rows)
    differ = con.execute(
        """SELECT ga, sa, gb, sb FROM pairs WHERE
               coalesce(tg_names_close(ga, array_to_string(ga, ''), sa, array_to_string(sa, ''),
                                       gb, array_to_string(gb, ''), sb, array_to_string(sb, '')), false)
                   IS DISTINCT FROM coalesce(plain_close(ga, sa, gb, sb), false)
               OR coalesce(tg_names_agree(ga, sa, gb, sb), false) IS DISTINCT FROM
                   coalesce(plain_agree(ga, sa, gb, sb), false)
               OR coalesce(tg_typo(ga[1], gb[1]), false) IS DISTINCT FROM coalesce(plain_typo(ga[1], gb[1]), false)"""
    ).fetchall()
    assert differ == []
    close = con.execute(
        "SELECT count_if(plain_close(ga, sa, gb, sb)), count_if(plain_agree(ga, sa, gb, sb)) FROM pairs"
    ).fetchall()[0]
    assert close[0] > 60 and close[1] > 60, close  # not vacuous: both kinds of answer are common
    last = rows[-1]
    assert con.execute("SELECT plain_close(?, ?, ?, ?)", list(last)).fetchall()[0][0] is True


@pytest.mark.parametrize(
    "text",
    [
        "",
        " ",
        "-",
        "n/a",
        "N/A N/A",
        "Ł",
        "Øre",
        "ß",
        "½",
        "²",
        "١٢",
        "ſ",
        "K",
        "İ",
        "\u2028",
        "x\x00",
    ],
)
def test_blank_is_exactly_what_folds_to_nothing(text):
    from taxgate.normalize.text import fold, is_blank

    assert is_blank(text) == (fold(text) == "")


def test_blank_is_exactly_what_folds_to_nothing_on_any_text():
    """`is_blank` answers the rules' `fold(x) == ""` without folding; on any text, the same answer
    (letters that fold to ASCII, digits of other scripts, marks, the Kelvin sign, ...)."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from taxgate.normalize.text import fold, is_blank

    @settings(max_examples=3000, deadline=None)
    @given(st.text(max_size=12))
    def same(text):
        assert is_blank(text) == (fold.__wrapped__(text) == "")

    same()


def _usaddress_tags(text):
    import usaddress

    try:
        return usaddress.tag(text)[0]
    except usaddress.RepeatedLabelError:
        return None


def test_the_flat_tagger_tags_as_usaddress_does_on_a_world(world, tmp_path):
    """`_crf_tags` hands python-crfsuite usaddress's own attributes flat, made once per token, and
    leaves out the false ones: on every street line of a 2025-shaped batch (defects, typos, units,
    boxes, placeholders) and of its master, the tags usaddress.tag gives, and None where it raises."""
    import duckdb
    from scourgify.cleaning import pre_clean_addr_str

    from taxgate.normalize.text import ascii_text
    from taxgate.synth import Mix, generate_batch

    assert address._FLAT, "usaddress or python-crfsuite moved: check the flat tagger against it"
    manifest = generate_batch(
        world["master"], tmp_path / "batch", 3_000, seed=8, mix=Mix.datafile_2025()
    )
    lines = duckdb.sql(
        f"""SELECT street, unit FROM read_csv('{manifest.parent / "requests.csv"}', all_varchar=true,
                header=true, ignore_errors=true)
            UNION SELECT street, unit FROM '{world["master"]}'"""
    ).fetchall()
    texts = set()
    for street, unit in lines + _STREETS:
        text = " ".join(
            p for p in (ascii_text(street or "").strip(), ascii_text(unit or "").strip()) if p
        )
        texts.add(text)
        try:
            texts.add(pre_clean_addr_str(text))
        except Exception:  # scourgify refuses some; the raw text is tagged all the same
            pass
    assert len(texts) > 3_000
    differ = [t for t in sorted(texts) if address._crf_tags(t) != _usaddress_tags(t)]
    assert differ == []


def test_the_flat_tagger_tags_as_usaddress_does_on_any_line():
    """Lines made of address words, numbers, punctuation the tokenizer splits on ('#', '&', ',',
    parentheses), intersections and repeated labels, and text outside ASCII."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = st.sampled_from(
        [
            "123",
            "4B",
            "½",
            "N",
            "SW",
            "MAIN",
            "OAK",
            "ST",
            "AVE",
            "Blvd.",
            "apt",
            "#",
            "12",
            "&",
            "PO",
            "BOX",
            "Box",
            "77",
            "RR",
            "2",
            "Unit",
            "Suite",
            "FL",
            "(rear)",
            "St,",
            "Núñez",
            "and",
            "Failed",
            "to",
            "Provide",
            "NA",
            "00000",
            "CO",
            "RD",
            "HWY",
            "1ST",
            "x",
            "-",
            ".",
            ";",
        ]
    )

    @settings(max_examples=1500, deadline=None)
    @given(st.lists(words, max_size=9))
    def same(parts):
        text = " ".join(parts)
        assert address._crf_tags(text) == _usaddress_tags(text)

    same()
