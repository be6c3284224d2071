"""The synthetic world: valid, unique TINs; the hard cases planted; deterministic for a seed."""

from __future__ import annotations

import duckdb
import pyarrow.parquet as pq

from taxgate.synth import Mix, generate_batch, generate_master


def test_master_is_deterministic(tmp_path):
    a, b, c = tmp_path / "a.parquet", tmp_path / "b.parquet", tmp_path / "c.parquet"
    assert generate_master(800, a, seed=9) == generate_master(800, b, seed=9)
    generate_master(800, c, seed=10)
    assert pq.read_table(a).equals(pq.read_table(b))
    assert not pq.read_table(a).equals(pq.read_table(c))


def test_master_shape_and_tins(world):
    con = duckdb.connect()
    m, labels = str(world["master"]), str(world["master"].with_name("master.labels.parquet"))
    people, rows, per_year_dupes = con.execute(
        f"SELECT count(DISTINCT tin), count(*), count(*) - count(DISTINCT (tin, tax_year)) FROM '{m}'"
    ).fetchone()
    assert people == 3_000 and rows > 3 * people and per_year_dupes == 0
    assert con.execute(f"SELECT count(*) FROM '{labels}'").fetchone()[0] == 3_000
    # One identity per TIN: name and date of birth do not change between years.
    assert (
        con.execute(
            f"SELECT count(*) FROM (SELECT tin FROM '{m}' GROUP BY tin HAVING count(DISTINCT "
            "(first_name, last_name, date_of_birth)) > 1)"
        ).fetchone()[0]
        == 0
    )
    tins = [t for (t,) in con.execute(f"SELECT DISTINCT tin FROM '{m}'").fetchall()]
    for tin in tins:
        area, group, serial = tin.split("-")
        assert len(area) == 3 and len(group) == 2 and len(serial) == 4 and serial != "0000"
        if area.startswith("9"):  # ITIN
            assert int(group) in set(range(50, 66)) | set(range(70, 89)) | {90, 91, 92} | set(
                range(94, 100)
            )
        else:  # SSN
            assert area not in ("000", "666") and group != "00"


def test_master_plants_the_hard_cases(world):
    con = duckdb.connect()
    m, labels = str(world["master"]), str(world["master"].with_name("master.labels.parquet"))
    flags = con.execute(
        "SELECT sum(jr_sr::int), sum(twin::int), sum(shared_home::int), "
        f"sum(apartment_building::int), sum(itin::int) FROM '{labels}'"
    ).fetchone()
    assert all(f > 0 for f in flags), flags
    origins = {o for (o,) in con.execute(f"SELECT DISTINCT origin FROM '{labels}'").fetchall()}
    assert {"hispanic", "vietnamese", "chinese", "anglo"} <= origins
    checks = {
        "moves": f"SELECT count(*) FROM (SELECT tin FROM '{m}' GROUP BY tin HAVING count(DISTINCT street) > 1)",
        "po boxes": f"SELECT count(*) FROM '{m}' WHERE street LIKE 'PO BOX %'",
        "units": f"SELECT count(*) FROM '{m}' WHERE unit <> ''",
        "accents": f"SELECT count(*) FROM '{m}' WHERE last_name <> strip_accents(last_name)",
        "particles": f"SELECT count(*) FROM '{m}' WHERE last_name LIKE 'DE LA %' OR last_name "
        "LIKE '% DEL %' OR last_name LIKE 'DEL %'",
        "two surnames": f"SELECT count(*) FROM '{m}' m JOIN '{labels}' l USING (tin) WHERE origin "
        "= 'hispanic' AND last_name LIKE '% %'",
        "compound given": f"SELECT count(*) FROM '{m}' WHERE first_name LIKE '% %'",
        "jr": f"SELECT count(*) FROM '{m}' WHERE suffix = 'JR'",
        "common name repeated": f"SELECT max(n) FROM (SELECT count(DISTINCT tin) n FROM '{m}' "
        "GROUP BY first_name, last_name)",
        "families sharing home and surname": f"""SELECT count(*) FROM (
                                                 SELECT street, unit, zip, last_name, tax_year FROM '{m}'
                                                 GROUP BY ALL HAVING count(DISTINCT tin) > 1)""",
    }
    for name, sql in checks.items():
        assert con.execute(sql).fetchone()[0] > (20 if name == "common name repeated" else 0), name


def test_batch_labels_cover_every_row(world, tmp_path):
    manifest = generate_batch(world["master"], tmp_path, 400, seed=2, mix=Mix(malformed=0.02))
    labels = pq.read_table(tmp_path / "requests.labels.parquet").to_pylist()
    with open(tmp_path / "requests.csv", "rb") as fh:
        lines = fh.read().count(b"\n") - 1
    assert len(labels) == lines >= 400
    assert manifest.exists()
    defects = {d for row in labels for d in row["defects"].split(";") if d}
    assert {
        "placeholder_address",
        "boilerplate_relevance",
        "single_officer",
        "civil_statute",
        "return_information",
    } <= defects
    variations = {v for row in labels for v in row["variations"].split(";") if v}
    assert {"absent_from_master", "moved_since", "spelling", "unit_format"} <= variations
    assert any(row["malformed"] for row in labels)
    present = [row for row in labels if row["true_tin"]]
    assert 0.6 < len(present) / len(labels) < 0.8


def test_batch_is_deterministic(world, tmp_path):
    generate_batch(world["master"], tmp_path / "a", 200, seed=4)
    generate_batch(world["master"], tmp_path / "b", 200, seed=4)
    assert (tmp_path / "a" / "requests.csv").read_bytes() == (
        tmp_path / "b" / "requests.csv"
    ).read_bytes()
