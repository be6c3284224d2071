"""Identification: the name rule, the shipped model, reproducible training, explainable decisions."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import pytest

from taxgate.identify import MODEL_FILE
from taxgate.identify.splink_settings import model_settings
from taxgate.identify.training import train_model
from taxgate.normalize.name import names_agree, suffix_code
from taxgate.synth import training_world

NICKNAMES = {"bill": "william", "pepe": "jose"}


@pytest.mark.parametrize(
    "a, b",
    [
        (("María", "García López"), ("MARIA", "GARCIA LOPEZ")),  # accents, case
        (("Maria", "Lopez Garcia"), ("MARIA", "GARCIA LOPEZ")),  # surname order
        (("Maria", "Garcia"), ("MARIA", "GARCIA LOPEZ")),  # one surname missing
        (("Maria Guadalupe", "Garcia"), ("MARIA", "GARCIA")),  # compound given name
        (("Nguyen", "Thi Lan"), ("THI LAN", "NGUYEN")),  # written surname first
        (("Ana", "de la Cruz"), ("ANA", "CRUZ")),  # particles
        (("Ana", "Cruz-Nunez"), ("ANA", "CRUZ NUÑEZ")),  # hyphen
        (("Bill", "Smith"), ("WILLIAM", "SMITH")),  # a listed nickname
    ],
)
def test_names_that_agree(a, b):
    assert names_agree(*a, *b, NICKNAMES)


@pytest.mark.parametrize(
    "a, b",
    [
        (("Bob", "Smith"), ("ROBERT", "SMITH")),  # a nickname the policy does not list
        (("John", "Johnon"), ("JOHN", "JOHNSON")),  # a misspelling is for a person to judge
        (("Jose", "Garcia"), ("JUAN", "GARCIA")),
        (("Maria", "Lopez"), ("MARIA", "GARCIA")),
        (("", "Garcia"), ("MARIA", "GARCIA")),
    ],
)
def test_names_that_do_not_agree(a, b):
    assert not names_agree(*a, *b, NICKNAMES)


def test_suffixes():
    assert [suffix_code(s) for s in ("Jr.", "JUNIOR", "iii", "3rd", "Sr", "MD", "")] == [
        "jr",
        "jr",
        "iii",
        "iii",
        "sr",
        "",
        "",
    ]


def test_shipped_model_matches_the_settings_and_is_trained():
    model = json.loads(MODEL_FILE.read_text())
    settings = model_settings().get_settings("duckdb").as_dict()
    assert [c["output_column_name"] for c in model["comparisons"]] == [
        c["output_column_name"] for c in settings["comparisons"]
    ]
    for comparison in model["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        assert abs(sum(lv["m_probability"] for lv in levels) - 1) < 1e-9, comparison[
            "output_column_name"
        ]
        assert all(lv.get("u_probability") for lv in levels), comparison["output_column_name"]


@pytest.mark.slow  # two models trained
def test_training_is_reproducible(tmp_path):
    models = []
    for name in ("a", "b"):  # each from a world of its own, made again from the seed
        (tmp_path / name).mkdir()
        world = training_world(tmp_path / name, seed=5, taxpayers=2_000, requests=1_000)
        models.append(train_model(tmp_path / f"{name}.json", *world, seed=5))
    assert models[0].read_bytes() == models[1].read_bytes()


@pytest.mark.slow  # a batch end to end
def test_explain_shows_the_evidence(world, tmp_path):
    from taxgate.pipeline import process

    process(world["manifest"], world["master"], tmp_path / "out")
    decisions = [
        json.loads(line)
        for line in (tmp_path / "out" / "auditors" / "evidence.jsonl").read_text().splitlines()
    ]
    disclosed = next(d for d in decisions if d["outcome"] == "DISCLOSED")
    assert disclosed["candidate"]["address_on_record"] and disclosed["names_agree"]
    assert set(disclosed["fields"]) == {
        "given",
        "surname",
        "middle_initial",
        "suffix",
        "dob",
        "tin",
        "house_number",
        "street_name",
        "unit",
        "zip5",
        "city_state",
    }
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxgate",
            "explain",
            disclosed["request_id"],
            "--response",
            tmp_path / "out",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    assert disclosed["candidate"]["tin"] in run.stdout and "house number" in run.stdout
    assert "threshold for a positive identification 20" in run.stdout  # the policy it was held to
    chart = (tmp_path / "out" / "auditors" / f"explain-{disclosed['request_id']}.html").read_text()
    assert (
        "<script" not in chart
        and "<svg" in chart
        and "How each field moved the match weight" in chart
    )

    from taxgate.reports.explanation import steps

    drawn = steps(disclosed)
    assert drawn[0][0].startswith("prior")
    # The bars add up to the candidate's match weight: the chart explains the number that decided,
    # and so does the table's last line.
    total = sum(weight for _, weight in drawn)
    assert abs(total - disclosed["candidate"]["weight"]) < 0.01
    assert f"{total:.1f}" in run.stdout.split("match weight")[-1]
    # a request refused with no candidate is explained too, by its codes and their citations
    refused = next(
        r
        for r in csv.DictReader(
            open(tmp_path / "out" / "auditors" / "decisions.csv", encoding="utf-8")
        )
        if r["reasons"] == "ID_NO_CANDIDATE"
    )
    told = subprocess.run(
        [
            sys.executable,
            "-m",
            "taxgate",
            "explain",
            refused["request_id"],
            "--response",
            tmp_path / "out",
        ],
        capture_output=True,
        text=True,
    )
    assert told.returncode == 0 and "ID_NO_CANDIDATE (26 U.S.C. § 6103(a))" in told.stdout
    assert "never looked up" not in told.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "taxgate", "explain", "NO-SUCH", "--response", tmp_path / "out"],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


@pytest.mark.slow  # a master prepared twice
def test_master_preparation_in_parallel_gives_the_same_table(world, tmp_path, monkeypatch):
    import shutil

    import duckdb

    from taxgate.identify import master as prepared

    copy = tmp_path / "master.parquet"
    shutil.copy(world["master"], copy)
    tables = []
    for threshold in (10**9, 100):  # serial, then in worker processes
        monkeypatch.setattr(prepared, "PARALLEL_ABOVE", threshold)
        for stale in tmp_path.glob("*.taxgate-prepared.*"):
            stale.unlink()
        con = duckdb.connect()
        prepared.load_master(con, copy)
        tables.append(con.execute("SELECT * FROM master_addresses ORDER BY unique_id").fetchall())
    assert tables[0] == tables[1] and len(tables[0]) > 3_000


def test_a_load_told_to_stop_stops_at_its_next_step_and_caches_nothing(
    world, tmp_path, monkeypatch
):
    """`load_master(stop=...)`: a run that ends while its master is being prepared (refused at
    intake, Ctrl-C) does not wait for the whole preparation. Wherever the stop arrives (before the
    master is read, between the normalisers, amid the worker processes' chunks, with the cache's
    files written but not yet in place), the load ends with LoadStopped and leaves no file beside
    the master (so the next run prepares it again, and finds nothing half-made) and, before the
    tables are made, no table."""
    import shutil
    import threading

    import duckdb

    from taxgate.identify import master as prepared

    class StopsAfter(threading.Event):  # the stop arrives after `checks` looks at it
        def __init__(self, checks: int):
            super().__init__()
            self.checks = checks

        def is_set(self) -> bool:
            self.checks -= 1
            return self.checks < 0

    copy = tmp_path / "master.parquet"
    shutil.copy(world["master"], copy)
    stamp = tmp_path / "master.taxgate-prepared.json"
    # The checks: 0-1 reading, 2-5 the normalisers, 6-8 the tables, 9 the cache's files written.
    for checks, parallel_above in ((0, 10**9), (4, 10**9), (6, 10**9), (5, 100), (9, 10**9)):
        monkeypatch.setattr(prepared, "PARALLEL_ABOVE", parallel_above)
        con = duckdb.connect()
        with pytest.raises(prepared.LoadStopped):
            prepared.load_master(con, copy, stop=StopsAfter(checks))
        assert sorted(p.name for p in tmp_path.iterdir()) == ["master.parquet"]
        tables = con.execute(
            "SELECT 1 FROM duckdb_tables() WHERE table_name IN ('master_addresses', 'last_known')"
        ).fetchall()
        assert len(tables) == (2 if checks == 9 else 0)
        con.close()
    con = duckdb.connect()
    prepared.load_master(con, copy, stop=StopsAfter(10**6))  # never stopped: prepared and cached
    assert stamp.exists() and con.execute("SELECT count(*) FROM master_addresses").fetchone()[0]


def test_the_last_known_address_is_one_address_for_every_caller(tmp_path):
    """Two addresses filed for the same latest year: a batch's release (`released`), an officer's
    review (`last_known_address`) and the records an officer sees (`taxpayer_records`, first row)
    name the same one, whatever order the master's file holds the rows in, Parquet or CSV."""
    import duckdb

    from taxgate.identify.master import (
        addresses_to_release,
        last_known_address,
        load_master,
        taxpayer_records,
    )

    base = {"first_name": "ANA", "middle_name": "", "last_name": "CRUZ", "suffix": ""}
    base["date_of_birth"] = "1980-02-03"
    rows = [
        {**base, "tin": "900-70-0001", "street": "12 ELM ST", "unit": "", "city": "AUSTIN",
         "state": "TX", "zip": "78701", "tax_year": 2021},
        {**base, "tin": "900-70-0001", "street": "9 OAK AVE", "unit": "", "city": "AUSTIN",
         "state": "TX", "zip": "78702", "tax_year": 2023},
        {**base, "tin": "900-70-0001", "street": "40 PINE RD", "unit": "2", "city": "AUSTIN",
         "state": "TX", "zip": "78703", "tax_year": 2023},
    ]  # fmt: skip
    chosen = set()
    for order in (rows, rows[::-1]):
        for suffix in ("parquet", "csv"):
            folder = tmp_path / f"{len(chosen)}-{suffix}-{order[0]['street'][:2]}"
            folder.mkdir()
            master = folder / f"master.{suffix}"
            con = duckdb.connect()
            con.execute(
                "CREATE TABLE m AS SELECT * FROM (VALUES "
                + ", ".join(
                    "("
                    + ", ".join(repr(str(r[c])) for c in r if c != "tax_year")
                    + f", {r['tax_year']})"
                    for r in order
                )
                + f") t({', '.join(order[0])})"
            )
            con.execute(f"COPY m TO '{master}'" + (" (HEADER)" if suffix == "csv" else ""))
            load_master(con, master)
            con.execute("CREATE TABLE decided AS SELECT '900700001' AS matched_tin, "
                        "'ID_POSITIVE' AS code")  # fmt: skip
            addresses_to_release(con, "decided")
            released = con.execute("SELECT address FROM released").fetchone()[0]
            con.close()
            reviewed = last_known_address(master, "900700001")
            first = taxpayer_records(master, ["900700001"])["900700001"][0]
            parts = ("street", "unit", "city", "state", "zip", "tax_year")
            assert {k: released[k] or "" for k in parts} == reviewed
            assert {k: first[k] for k in parts} == reviewed
            chosen.add(reviewed["street"])
    assert chosen == {"40 PINE RD"}  # of the two filed for 2023, the same one every time
