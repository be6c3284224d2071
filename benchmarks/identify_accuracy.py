"""Identification accuracy on data with ground truth, at the default policy.

Data set so far: the synthetic world (a seed the model was NOT trained on; the model is trained on
seed 2026), with lawful requests only (no defects) so that every request reaches identification.
FEBRL4 and the pseudopeople population are still to come (issue 3).

Prints, overall and broken down by name origin and by hard case:
  precision   correct disclosures / disclosures
  recall      correct disclosures / requests that could rightly be disclosed (the person is in the
              master and the requester's address is one they filed from)
  false disclosures  an address released for the wrong person or for someone not in the master
  review rate        requests sent to a disclosure officer

    python benchmarks/identify_accuracy.py [--taxpayers 50000] [--requests 20000] [--seed 7]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import duckdb

from taxgate.pipeline import process
from taxgate.synth import Mix, generate_batch, generate_master

WORK = Path(__file__).parent / "_work" / "accuracy"

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--taxpayers", type=int, default=50_000)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    master = WORK / f"master-{args.taxpayers}-{args.seed}.parquet"
    if not master.exists():
        generate_master(args.taxpayers, master, seed=args.seed)
    manifest = generate_batch(master, WORK / "batch", args.requests, seed=args.seed + 100, mix=Mix.clean())
    started = time.perf_counter()
    result = process(manifest, master, WORK / "out")
    print(f"synthetic world: {args.taxpayers:,} taxpayers (seed {args.seed}), {result.rows:,} lawful requests, "
          f"model {result.model_version}, processed in {time.perf_counter() - started:.1f} s")
    rows = duckdb.connect().execute(REPORT_SQL.format(
        decisions=WORK / "out" / "decisions.csv", labels=WORK / "batch" / "requests.labels.parquet",
        master_labels=master.with_name(master.stem + ".labels.parquet"), master=master,
    )).fetchall()
    print(f"{'slice':28} {'requests':>8} {'disclosable':>11} {'disclosed':>9} {'precision':>9} {'recall':>7} "
          f"{'false':>6} {'review':>7}")
    for slice_, n, disclosable, disclosed, correct, false, review in rows:
        precision = correct / disclosed if disclosed else float("nan")
        recall = correct / disclosable if disclosable else float("nan")
        print(f"{slice_:28} {n:8,} {disclosable:11,} {disclosed:9,} {precision:9.4f} {recall:7.3f} {false:6,} "
              f"{review / n:7.1%}")


if __name__ == "__main__":
    main()
