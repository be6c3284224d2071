"""The main job end to end on a synthetic world with ground truth."""

from __future__ import annotations

import csv
import hashlib
import json

import duckdb
import pyarrow.parquet as pq
import pytest

from taxgate.domain import Level, ReasonCode
from taxgate.pipeline import process
from taxgate.store import open_store
from taxgate.synth import Mix, generate_batch

pytestmark = pytest.mark.slow  # batches end to end


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def processed(world, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    result = process(world["manifest"], world["master"], out)
    labels = pq.read_table(world["manifest"].parent / "requests.labels.parquet").to_pylist()
    return result, out, labels


def test_every_row_ends_with_exactly_one_outcome(processed, world):
    result, out, labels = processed
    responses = read_csv(out / "response.csv")
    decisions = read_csv(out / "auditors" / "decisions.csv")
    assert len(responses) == len(decisions) == len(labels) == result.rows
    assert [r["request_id"] for r in responses] == [d["request_id"] for d in decisions]
    jsonl = [
        json.loads(line)
        for line in (out / "response.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert jsonl == responses
    assert all(
        r["outcome"] in ("DISCLOSED", "NOT_DISCLOSED", "REFUSED", "HELD", "REVIEW")
        for r in responses
    )
    rows_file = world["manifest"].parent / "requests.csv"
    assert result.rows_sha256 == hashlib.sha256(rows_file.read_bytes()).hexdigest()
    assert json.loads((out / "summary.json").read_text())["rows"] == result.rows


def test_no_false_disclosure(processed):
    _, out, labels = processed
    decisions = read_csv(out / "auditors" / "decisions.csv")
    disclosed = [(d, label) for d, label in zip(decisions, labels) if d["outcome"] == "DISCLOSED"]
    assert len(disclosed) > 50
    for decision, label in disclosed:
        assert label["true_tin"] and decision["matched_tin"] == label["true_tin"].replace(
            "-", ""
        ), decision
        assert label["address_on_record"], decision
        assert not label["malformed"]


def test_released_address_is_the_latest_tax_year(processed, world):
    _, out, _ = processed
    con = duckdb.connect()
    latest = {
        tin: row
        for tin, *row in con.execute(
            f"""SELECT replace(tin, '-', ''), arg_max(street, tax_year), arg_max(zip, tax_year), max(tax_year)::VARCHAR
                FROM '{world["master"]}' GROUP BY 1"""
        ).fetchall()
    }
    for response, decision in zip(
        read_csv(out / "response.csv"), read_csv(out / "auditors" / "decisions.csv")
    ):
        if response["outcome"] == "DISCLOSED":
            assert [
                response["address_street"],
                response["address_zip"],
                response["address_tax_year"],
            ] == latest[decision["matched_tin"]]
        else:
            assert not response["address_street"] and not response["address_zip"]


def test_labelled_defects_are_refused_with_their_code(processed):
    _, out, labels = processed
    expected = {
        "placeholder_address": "ADDRESS_PLACEHOLDER",
        "zip_only": "ADDRESS_PLACEHOLDER",
        "boilerplate_relevance": "RELEVANCE_NOT_SPECIFIC",
        "single_officer": "ENGAGED_OFFICIAL_IMPLAUSIBLE",
        "civil_statute": "STATUTE_NOT_CRIMINAL",
        "unknown_statute": "STATUTE_UNKNOWN",
        "tax_statute": "STATUTE_TAX_ADMINISTRATION",
        "return_information": "ITEM_NOT_DISCLOSABLE",
        "missing_removal_order": "REMOVAL_ORDER_MISSING",
        "missing_name": "NAME_MISSING",
        "missing_case": "CASE_NUMBER_MISSING",
        "bad_tax_period": "TAX_PERIOD_INVALID",
    }
    seen = set()
    for decision, label in zip(read_csv(out / "auditors" / "decisions.csv"), labels):
        codes = decision["reasons"].split(";")
        if label["malformed"]:
            assert decision["outcome"] == "REFUSED" and codes == ["MALFORMED_ROW"]
            continue
        for defect in label["defects"].split(";"):
            if defect in expected:
                seen.add(defect)
                assert expected[defect] in codes, (decision, label)
                if defect != "return_information":
                    assert decision["outcome"] == "REFUSED"
    assert {
        "placeholder_address",
        "boilerplate_relevance",
        "single_officer",
        "civil_statute",
    } <= seen


def test_the_response_folder_names_no_taxpayer_but_in_its_released_addresses(processed):
    """What only the tax agency reads (decisions.csv, evidence.jsonl: candidates' and runner-ups'
    TINs) is in auditors/, so sending the response folder's files sends none of it."""
    _, out, _ = processed
    tins = {
        t
        for d in read_csv(out / "auditors" / "decisions.csv")
        for t in (d["matched_tin"], d["runner_up_tin"])
        if t
    }
    assert tins
    for path in out.iterdir():
        if path.is_file():
            text = path.read_text(encoding="utf-8")
            assert not [t for t in tins if t in text], path.name


def test_requester_never_sees_identification_evidence(processed):
    _, out, _ = processed
    audit_codes = {c.value for c in ReasonCode if c.level is Level.AUDIT}
    for response in read_csv(out / "response.csv"):
        codes = set(filter(None, response["reasons"].split(";")))
        assert not codes & audit_codes
        if response["outcome"] == "NOT_DISCLOSED":
            assert codes <= {"ITEM_NOT_DISCLOSABLE"}  # nothing that says whether a record exists


def test_formats_agree(world, tmp_path, monkeypatch):
    """The same requests in three formats decide alike. Each run has a store (and key) of its own: in
    one store the second file would be the same requests again, every one a duplicate."""
    decisions = {}
    for fmt in ("csv", "jsonl", "parquet"):
        monkeypatch.setenv("TAXGATE_LEDGER_KEY", str(tmp_path / f"{fmt}.key"))
        manifest = generate_batch(
            world["master"], tmp_path / fmt, 300, seed=8, mix=Mix(malformed=0), fmt=fmt
        )
        store = open_store(f"sqlite:///{tmp_path / fmt}.db")
        process(manifest, world["master"], tmp_path / f"out-{fmt}", store=store)
        store.close()
        decisions[fmt] = [
            (d["request_id"], d["outcome"], d["reasons"], d["matched_tin"])
            for d in read_csv(tmp_path / f"out-{fmt}" / "auditors" / "decisions.csv")
        ]
    assert decisions["csv"] == decisions["jsonl"] == decisions["parquet"]


def test_master_may_be_csv(world, tmp_path):
    master_csv = tmp_path / "master.csv"
    duckdb.connect().execute(f"COPY (SELECT * FROM '{world['master']}') TO '{master_csv}' (HEADER)")
    a = process(world["manifest"], world["master"], tmp_path / "a")
    b = process(world["manifest"], master_csv, tmp_path / "b")
    assert a.outcomes == b.outcomes
    assert read_csv(tmp_path / "a" / "auditors" / "decisions.csv") == read_csv(
        tmp_path / "b" / "auditors" / "decisions.csv"
    )


def test_parallel_rules_pass_gives_the_same_decisions(world, tmp_path, monkeypatch):
    monkeypatch.setattr(
        "taxgate.pipeline.staging.CHUNK_ROWS", 200
    )  # several chunks from a small batch
    monkeypatch.setenv("TAXGATE_WORKERS", "1")
    one = process(world["manifest"], world["master"], tmp_path / "one")
    monkeypatch.setenv("TAXGATE_WORKERS", "2")
    two = process(world["manifest"], world["master"], tmp_path / "two")
    assert one.outcomes == two.outcomes
    assert read_csv(tmp_path / "one" / "auditors" / "decisions.csv") == read_csv(
        tmp_path / "two" / "auditors" / "decisions.csv"
    )
    assert (tmp_path / "one" / "response.csv").read_bytes() == (
        tmp_path / "two" / "response.csv"
    ).read_bytes()


# What the shared world's batches were decided, as a digest of every response and auditor file
# (ledger indexes aside), under the versions that decided them. Making a stage faster must leave
# them byte for byte: outcomes, reasons, weights, evidence. A change to a rule, the policy or the
# model changes them on purpose, and then the versions move and a digest is recorded for them here.
DECIDED = {
    "default": "13ae62f470c126eb6fb541e57e0cd84531bd2edeeb23346b4040d733df990f3c",
    "datafile_2025": "3f6a33847dc54ab4a586e27e5330795eb184dc885a966b1f20a0d9aa55202d3b",
}
_DECISION_FILES = (
    "response.csv",
    "response.jsonl",
    "reasons.csv",
    "malformed_rows.csv",
    "auditors/decisions.csv",
    "auditors/evidence.jsonl",
)


def _decisions_digest(out) -> str:
    digest = hashlib.sha256()
    for name in _DECISION_FILES:
        text = (out / name).read_text(encoding="utf-8")
        if name == "response.csv":
            text = "\n".join(line.rsplit(",", 1)[0] for line in text.splitlines())
        elif name == "response.jsonl":
            text = "\n".join(
                json.dumps({k: v for k, v in json.loads(line).items() if k != "ledger_index"})
                for line in text.splitlines()
            )
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return digest.hexdigest()


@pytest.mark.parametrize("cut", ["one block", "blocks"])
@pytest.mark.parametrize("mix", sorted(DECIDED))
def test_the_decisions_are_byte_for_byte_those_recorded_for_these_versions(
    world, tmp_path, monkeypatch, mix, cut
):
    """Also when the batch is cut into blocks that are identified while two worker processes judge
    the next, and decided by two more, several chunks in flight: a request's decision is its own,
    whatever came in its block, and the response keeps the batch's order."""
    from taxgate.identify import MODEL_VERSION
    from taxgate.rules import RULE_SET_VERSION

    if cut == "blocks":
        monkeypatch.setattr("taxgate.pipeline.staging.CHUNK_ROWS", 200)
        monkeypatch.setattr(
            "taxgate.pipeline.deciding.RECORD_ROWS", 70
        )  # pass 3's chunks: more than `ahead` a block
        monkeypatch.setenv("TAXGATE_WORKERS", "2")
    else:
        monkeypatch.setenv("TAXGATE_WORKERS", "1")
    manifest = world["manifest"]
    if mix != "default":
        manifest = generate_batch(
            world["master"], tmp_path / "batch", 3_000, seed=2025, mix=getattr(Mix, mix)()
        )
    result = process(manifest, world["master"], tmp_path / "out")
    versions = (RULE_SET_VERSION, result.policy_version, MODEL_VERSION)
    assert versions == ("2026.12.1", "demo-2025.1@sha256:946fe51117e852d1", "taxgate-id-2"), (
        "a version moved: decide the world's batches under the new versions and record their digests in DECIDED"
    )
    assert _decisions_digest(tmp_path / "out") == DECIDED[mix], result.outcomes


def test_evidence_serialised_once_is_what_json_writes():
    """The store's evidence and evidence.jsonl's line are joined from fields serialised once
    (`response.evidence_fields`): byte for byte what `json.dumps(..., sort_keys=True)` writes,
    keys that sort differently quoted and unquoted ("a" / "a b" / "a!") and text outside ASCII included."""
    import json

    from taxgate.response import evidence_fields, evidence_json

    evidence = {
        "a b": 1,
        "a": {"z": [1, 2.5, None], "b": 'Núñez \u2028 "q"'},
        "a!": True,
        "": {},
        "runner_up": {},
    }
    assert evidence_json(evidence_fields(evidence)) == json.dumps(evidence, sort_keys=True)
    assert evidence_json({}) == json.dumps({}) == "{}"


def test_the_first_block_takes_every_chunk_already_judged():
    """A block costs a Splink run over the master: when the rules have run ahead (a master prepared
    cold), the first block takes all they judged; later blocks keep their size, and every chunk is
    in exactly one block, in order."""
    import pyarrow as pa

    from taxgate.pipeline.judging import blocks

    chunks = [
        (pa.table({"row_number": [i * 10 + k for k in range(10)]}), pa.table({"n": [i]}))
        for i in range(12)
    ]

    def sizes(judged_already):
        made = list(blocks(iter(chunks), 20, judged_already))
        assert [r for judged, _ in made for r in judged["row_number"].to_pylist()] == list(
            range(120)
        )
        return [judged.num_rows for judged, _ in made]

    assert sizes(lambda chunk: False) == [20] * 6  # nothing ahead: blocks of their size
    assert sizes(lambda chunk: chunk < 7) == [
        70,
        20,
        20,
        10,
    ]  # seven judged ahead: one block of them
    assert sizes(lambda chunk: True) == [120]  # all judged: one block, one Splink run


@pytest.mark.parametrize("master_exists", [True, False])
def test_a_batch_refused_at_intake_leaves_no_master_load_behind(world, tmp_path, master_exists):
    """The master is loaded in a thread from the batch's first row (`master_loading`): a rows file
    refused at intake still gets its own error (not the master's), and nothing of the load is left
    running or on disk once the run has stopped."""
    import shutil
    import threading

    from taxgate.intake import IntakeError

    master = tmp_path / "master.parquet"
    if master_exists:
        shutil.copy(world["master"], master)
    (tmp_path / "requests.csv").write_text("name,colour\nA,blue\n", encoding="utf-8")
    manifest = tmp_path / "manifest.json"
    raw = json.loads(world["manifest"].read_text(encoding="utf-8"))
    manifest.write_text(json.dumps({**raw, "requests": "requests.csv"}), encoding="utf-8")
    with pytest.raises(IntakeError, match="none of the request columns"):
        process(manifest, master, tmp_path / "out")
    assert not any(t.name.startswith("taxgate-master") for t in threading.enumerate())
    assert not (tmp_path / "out" / ".work").exists()
