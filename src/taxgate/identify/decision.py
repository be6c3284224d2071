"""The positive-identification decision (docs/DESIGN.md "Positive identification") as named rules.

Splink scores every (request, address of a taxpayer) pair; this module turns the scored pairs into
one decision per request, in SQL, so that a million requests are decided inside the database.

First the facts: for each request its best taxpayer, the runner-up, and what the request says
against that taxpayer's record, each fact a word an officer can read:
- `names`: against the names the taxpayer filed under (like the address, any of them): "agree"
  (rule 2: after normalising, as arrays: particles, either surname order, one surname missing,
  given and family name swapped, a nickname the policy lists), "misspelled" (each part within a
  typing error of the other: `normalize.name`'s `tg_names_close`) or "differ";
- `dob`: "same", "missing" (on either side), "typo" (day and month swapped, two adjacent digits
  transposed, or one digit wrong, and less than ten years apart: what a clerk types) or "conflict"
  (anything else: another person, or a generation apart);
- `address`: "on record" (the standardised line, unit and ZIP or city+state equal an address the
  taxpayer filed from), "misspelled" (the same house number, the same unit or none on the request,
  the same ZIP or a city a typing error away in the same state, the street's name, its name and
  type spelled out (`street_letters`) or its line as written a typing error away, its type the
  same, mistyped or left out) or "not on record".

Then the rules, in order: the first that holds gives the code. Each is a named piece — its code
(whose citation is the statute's), its SQL condition over the facts, and its words — so each can
be tested on hand-built scored pairs without Splink (tests/identify/test_identify_rules.py). A request no
rule stops is ID_POSITIVE. Near the line (`REVIEW_SQL`), a disclosure officer decides.

The tolerances are for what a requester's clerk gets wrong and nothing else: each tolerated error
costs weight (the model scores it), and a misspelled name needs the same date of birth beside it
(so no request leans on more than two errors: `clerk_errors` in the evidence counts them).
"""

from __future__ import annotations

from dataclasses import dataclass

from taxgate.domain import ReasonCode
from taxgate.normalize.name import RULE_2_MACROS


@dataclass(frozen=True, slots=True)
class DecisionRule:
    """One rule of the decision: when `condition` (SQL over the facts) holds, the request gets `code`."""

    name: str
    code: ReasonCode
    condition: str  # may name {threshold} and {margin}
    words: str  # for an officer: why this request stopped here

    @property
    def citation(self) -> str:
        return self.code.citation


RULES: tuple[DecisionRule, ...] = (
    DecisionRule(
        "tin_contradicts",
        ReasonCode.ID_TIN_CONFLICT,
        "q_tin IS NOT NULL AND q_tin IS DISTINCT FROM m_tin",
        "The TIN the request gives is not the candidate's: a contradiction vetoes any match.",
    ),
    DecisionRule(
        "dob_contradicts",
        ReasonCode.ID_DOB_CONFLICT,
        "dob = 'conflict'",
        "The date of birth the request gives is not the candidate's, and not as a typing error would "
        "make it (day and month swapped, two digits transposed, one digit wrong): it vetoes any match.",
    ),
    DecisionRule(
        "runner_up_close",
        ReasonCode.ID_AMBIGUOUS,
        "weight - runner_weight < {margin}",
        "Two taxpayers fit almost equally: the candidate leads the runner-up by less than the margin.",
    ),
    DecisionRule(
        "namesake_at_address",
        ReasonCode.ID_AMBIGUOUS,
        "array_length(namesakes) > 0",
        "Another taxpayer whose name agrees with the request's filed from this address, and nothing the "
        "request says rules them out, so the request cannot tell them apart.",
    ),
    DecisionRule(
        "address_not_on_record",
        ReasonCode.ID_ADDRESS_NOT_ON_RECORD,
        "address = 'not on record'",
        "The address the request gives is not one the candidate filed from, even allowing a typing "
        "error in the street, and a disclosure needs the taxpayer's own address beside the name.",
    ),
    DecisionRule(
        "names_differ",
        ReasonCode.ID_WEAK,
        "names = 'differ'",
        "The names do not agree, even allowing a typing error.",
    ),
    DecisionRule(
        "misspelled_name_uncorroborated",
        ReasonCode.ID_WEAK,
        "names = 'misspelled' AND dob <> 'same'",
        "A name is misspelled and no date of birth the same as the candidate's stands beside it.",
    ),
    DecisionRule(
        "middle_initial_contradicts",
        ReasonCode.ID_WEAK,
        "middle_conflict",
        "The middle initials differ: evidence of another person.",
    ),
    DecisionRule(
        "weight_below_threshold",
        ReasonCode.ID_WEAK,
        "weight < {threshold}",
        "The match weight is below the threshold for a positive identification.",
    ),
)
RULE_NAMES = {rule.name: rule for rule in RULES}
# Near the line an officer decides: every rule but the threshold passed, or only the middle
# initials differ (a typing error, or another person), or a misspelled name stands beside a
# mistyped date of birth (two errors in who the person is: a sibling's could look so), and the
# weight is at or above the review line.
REVIEW_SQL = (
    "(rule IN ('weight_below_threshold', 'middle_initial_contradicts') "
    "OR (rule = 'misspelled_name_uncorroborated' AND dob = 'typo')) AND weight >= {review}"
)


def case_sql(threshold: float, margin: float) -> str:
    """The rules as one SQL CASE giving the name of the first rule that holds ('positive' if none)."""
    arms = "\n        ".join(
        f"WHEN {rule.condition.format(threshold=threshold, margin=margin)} THEN '{rule.name}'"
        for rule in RULES
    )
    return f"CASE\n        {arms}\n        ELSE 'positive' END"


def code_sql(rule_column: str = "rule") -> str:
    """The reason code of a rule name, as SQL."""
    arms = " ".join(f"WHEN '{rule.name}' THEN '{rule.code.value}'" for rule in RULES)
    return f"CASE {rule_column} {arms} ELSE '{ReasonCode.ID_POSITIVE.value}' END"


# Facts over the taxpayers' address pairs. {q}/{m}: the side Splink put the requests and the master on.
_FACTS_SQL = """
WITH requests AS (
    SELECT row_number, 'R' || CAST(row_number AS VARCHAR) AS q_unique_id, nullif(tin, '') AS q_tin,
        nullif(dob, '') AS q_dob,
        nullif(suffix, '') AS q_suffix, nullif(middle_initial, '') AS q_middle
    FROM id_requests
), split AS (
    -- names as token lists first: a macro repeats its arguments, so they are columns, not expressions
    SELECT *, unique_id_{m} AS pair_row, tg_tokens(given_{q}) AS qg, tg_tokens(surname_{q}) AS qs,
        tg_tokens(given_{m}) AS record_given, tg_tokens(surname_{m}) AS ms,
        -- rule 3: the requester's standardised address equals one the taxpayer filed from
        coalesce(address_key_{q} = address_key_{m}
                 AND (zip5_{q} = zip5_{m} OR (city_{q} = city_{m} AND state_{q} = state_{m})), false) AS pair_on_record,
        coalesce(address_key_{q} = address_key_{m}, false) AS pair_same_line,
        -- the address's words without spaces, for tg_typo
        replace(city_{q}, ' ', '') AS q_city, replace(city_{m}, ' ', '') AS m_city,
        replace(street_core_{q}, ' ', '') AS q_street_core, replace(street_core_{m}, ' ', '') AS m_street_core,
        replace(street_name_{q}, ' ', '') AS q_street_name, replace(street_name_{m}, ' ', '') AS m_street_name
    FROM {predictions}
), tokens AS (
    -- rule 2's nicknames: a one-word given name the policy lists as the other's nickname (or the
    -- other way round) is that name, so the record's given name reads as the request's
    SELECT s.*, CASE WHEN n.a IS NULL THEN s.record_given ELSE s.qg END AS mg,
        -- each part's words joined, for tg_names_close
        array_to_string(s.qg, '') AS qg_text, array_to_string(s.qs, '') AS qs_text,
        array_to_string(CASE WHEN n.a IS NULL THEN s.record_given ELSE s.qg END, '') AS mg_text,
        array_to_string(s.ms, '') AS ms_text
    FROM split s LEFT JOIN tg_nickname n
        ON array_length(s.qg) = 1 AND array_length(s.record_given) = 1 AND n.a = s.qg[1] AND n.b = s.record_given[1]
), address_pairs AS (
    -- what each scored pair says, the name and date-of-birth rules evaluated once per pair; CASE
    -- arms, cheapest first, because DuckDB evaluates a later arm only on the rows the earlier leave
    SELECT *,
        CASE WHEN given_{q} <> '' AND surname_{q} <> '' AND given_{q} = given_{m} AND surname_{q} = surname_{m}
                  THEN 'agree'  -- the same words: rule 2 at once, without the lists
             WHEN coalesce(tg_names_agree(qg, qs, mg, ms), false) THEN 'agree'
             WHEN coalesce(tg_names_close(qg, qg_text, qs, qs_text, mg, mg_text, ms, ms_text), false) THEN 'misspelled'
             ELSE 'differ' END AS pair_names,
        coalesce(tg_dob(nullif(dob_{q}, ''), nullif(dob_{m}, '')), 'missing') AS pair_dob,
        -- rule 3, allowing the clerk a typing error in the street or the city (on record is within
        -- it): the same house number; the same unit, or none on the request (a clerk leaves it out;
        -- another unit is another home); the street's type the same, a typo of it
        -- (features.street_parts) or left out; the same ZIP (or a city a typo away in the same
        -- state); the street a typo away, as its name, as its name and type spelled out, or as
        -- written (a mistyped type: "Huff Zt")
        CASE WHEN pair_on_record THEN true
             WHEN NOT coalesce(house_number_{q} = house_number_{m}
                               AND coalesce(unit_{q}, '') IN ('', coalesce(unit_{m}, ''))
                               AND (street_type_{q} IS NULL OR street_type_{m} IS NULL
                                    OR street_type_{q} = street_type_{m}), false) THEN false
             WHEN NOT (coalesce(zip5_{q} = zip5_{m}, false)
                       OR coalesce(tg_typo(q_city, m_city)
                                   AND coalesce(state_{q} = state_{m}, true), false)) THEN false
             WHEN coalesce(tg_typo(q_street_core, m_street_core), false) THEN true
             WHEN coalesce(tg_typo(street_letters_{q}, street_letters_{m}), false) THEN true
             ELSE coalesce(tg_typo(q_street_name, m_street_name), false)
             END AS pair_misspelled
    FROM tokens
), per_taxpayer AS (
    -- each taxpayer's best pair over the addresses they filed from, and what those addresses say
    SELECT unique_id_{q} AS q_unique_id, tin_{m} AS m_tin, max(match_weight) AS weight,
        -- the best pair and what it says, taken together (one arg_max, so one pair); two of the
        -- taxpayer's addresses can score alike, and the address's id then chooses, on any engine
        arg_max(struct_pack(pair := pair_row, names := pair_names, dob := pair_dob,
                            suffix := nullif(suffix_{m}, '')), (match_weight, pair_row)) AS best,
        -- like the address, the name is any the taxpayer filed under: one return's name may be
        -- mistyped, blank or a placeholder where the others carry it
        CASE max(CASE pair_names WHEN 'agree' THEN 2 WHEN 'misspelled' THEN 1 ELSE 0 END)
             WHEN 2 THEN 'agree' WHEN 1 THEN 'misspelled' ELSE 'differ' END AS names_on_record,
        bool_or(pair_on_record) AS on_record, bool_or(pair_misspelled) AS misspelled_address,
        bool_or(pair_same_line) AS same_street_line
    FROM address_pairs GROUP BY ALL
), ranked AS (
    SELECT *, row_number() OVER by_weight AS rank, lead(m_tin) OVER by_weight AS runner_tin,
        lead(weight) OVER by_weight AS runner_weight
    FROM per_taxpayer WINDOW by_weight AS (PARTITION BY q_unique_id ORDER BY weight DESC, m_tin)
), namesakes AS (
    -- another taxpayer whose name agrees (or, when the candidate's is itself misspelled, is as
    -- near) filed from (about) the requester's address (father and son, a namesake in a shared
    -- home), and nothing the request says (date of birth, suffix) rules them out: no weight gap can
    -- tell the two apart, whatever noise opened it. Loose on purpose: this can only make a request
    -- ambiguous, never disclose one.
    SELECT best.q_unique_id, list_sort(list(other.m_tin)) AS namesakes
    FROM ranked best JOIN ranked other ON other.q_unique_id = best.q_unique_id AND other.m_tin <> best.m_tin
        JOIN requests r ON r.q_unique_id = best.q_unique_id
    WHERE best.rank = 1 AND (other.on_record OR other.same_street_line OR other.misspelled_address)
        AND other.best.dob <> 'conflict'
        -- the request's date of birth is the candidate's to the digit and only near this one's
        AND NOT (best.best.dob = 'same' AND other.best.dob = 'typo')
        AND NOT (r.q_suffix IS NOT NULL AND r.q_suffix IS DISTINCT FROM other.best.suffix)
        AND (other.names_on_record = 'agree' OR (best.names_on_record <> 'agree' AND
            other.names_on_record = 'misspelled'))
    GROUP BY best.q_unique_id
), candidates AS (
    SELECT r.*, b.m_tin, b.weight, b.runner_tin, b.runner_weight, b.on_record, b.misspelled_address,
        coalesce(n.namesakes, []) AS namesakes,
        b.names_on_record AS names, b.best.dob AS dob,
        p.unique_id_{m} AS m_unique_id, nullif(p.middle_initial_{m}, '') AS m_middle,
        -- each field's level, weight and term-frequency adjustment for the deciding pair
        struct_pack({fields}) AS fields
    FROM requests r JOIN ranked b ON b.q_unique_id = r.q_unique_id AND b.rank = 1
        JOIN {predictions} p ON p.unique_id_{q} = b.q_unique_id AND p.unique_id_{m} = b.best.pair
        LEFT JOIN namesakes n ON n.q_unique_id = r.q_unique_id
), described AS (
    SELECT *,
        CASE WHEN on_record THEN 'on record' WHEN misspelled_address THEN 'misspelled'
             ELSE 'not on record' END AS address,
        -- rule 4 in spirit: a middle initial that contradicts is evidence of another person
        coalesce(q_middle <> m_middle, false) AS middle_conflict
    FROM candidates
)
SELECT *, (names = 'misspelled')::INTEGER + (dob = 'typo')::INTEGER + (address = 'misspelled')::INTEGER AS clerk_errors
FROM described
"""

DECISION_SQL = """
WITH facts AS ({facts}), ruled AS (
    SELECT *, {case} AS rule FROM facts
), decided AS (
    SELECT *, {code} AS code, {review_sql} AS review FROM ruled
)
SELECT q.row_number, coalesce(d.code, 'ID_NO_CANDIDATE') AS code, coalesce(d.review, false) AS review,
    coalesce(d.m_tin, '') AS matched_tin, d.weight AS match_weight, coalesce(d.runner_tin, '') AS runner_up_tin,
    d.runner_weight AS runner_up_weight,
    CASE WHEN d.code IS NOT NULL THEN struct_pack(
        address := d.address,
        candidate := struct_pack(address_near := d.address = 'misspelled', address_on_record := d.on_record,
                                 address_row := d.m_unique_id, tin := d.m_tin, weight := tg_weight(d.weight)),
        clerk_errors := d.clerk_errors,
        decision := d.code || CASE WHEN d.review THEN ' (review)' ELSE '' END,
        dob := d.dob,
        fields := d.fields,
        middle_initial_conflict := d.middle_conflict,
        names := d.names,
        names_agree := d.names = 'agree',
        namesakes_at_address := d.namesakes,
        rule := d.rule,
        runner_up := struct_pack(tin := coalesce(d.runner_tin, ''), weight := tg_weight(d.runner_weight))
    ) END AS evidence
FROM id_requests q LEFT JOIN decided d USING (row_number)
"""

# The date of birth's typing errors, and a weight as the evidence writes it, as DuckDB macros
# (tg_typo, for words, is `normalize.name`'s).
_MACROS = (
    # To three places; a negative zero (a tf adjustment of -0.0004) written 0, since engines part on its sign.
    "CREATE OR REPLACE MACRO tg_weight(x) AS round(x, 3) + 0.0",
    # A date of birth (YYYY-MM-DD) against the record's. A generation apart is never a typo.
    """CREATE OR REPLACE MACRO tg_dob(a, b) AS CASE
           WHEN a IS NULL OR b IS NULL THEN 'missing'
           WHEN a = b THEN 'same'
           WHEN abs(CAST(substr(a, 1, 4) AS INTEGER) - CAST(substr(b, 1, 4) AS INTEGER)) >= 10 THEN 'conflict'
           WHEN substr(a, 1, 4) = substr(b, 1, 4) AND substr(a, 6, 2) = substr(b, 9, 2)
                AND substr(a, 9, 2) = substr(b, 6, 2) THEN 'typo'
           WHEN damerau_levenshtein(replace(a, '-', ''), replace(b, '-', '')) <= 1 THEN 'typo'
           ELSE 'conflict' END""",
)


def define_decision_macros(con) -> None:
    """Define the macros the facts read beside `normalize.name`'s (`define_names_agree`)."""
    for macro in _MACROS:
        con.execute(macro)


def decision_macros() -> tuple[str, ...]:
    """Every macro the decision calls, as DuckDB defines them (for a translation to another engine)."""
    return (*RULE_2_MACROS, *_MACROS)


def decision_sql(
    predictions: str, q: str, m: str, fields: str, threshold: float, review: float, margin: float
) -> str:
    """The whole decision over the scored pairs in table `predictions`, one row per request of `id_requests`."""
    facts = _FACTS_SQL.format(predictions=predictions, q=q, m=m, fields=fields)
    return DECISION_SQL.format(
        facts=facts,
        case=case_sql(threshold, margin),
        code=code_sql(),
        review_sql=REVIEW_SQL.format(review=review),
    )
