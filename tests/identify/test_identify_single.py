"""The single-request path (identify.single) gives each request the decision, the weights and the
evidence the batch path gives it: an urgent answer is the answer it would have had in a batch."""

from __future__ import annotations

import csv
import json
from datetime import date

import pytest

from taxgate.identify.single import Identifier
from taxgate.intake import RowStream, read_manifest
from taxgate.pipeline import process
from taxgate.policy import load_policies, policy_in_force
from taxgate.synth import Mix, generate_batch

pytestmark = pytest.mark.slow  # the master loaded, requests one by one against the batch path


def test_one_request_at_a_time_is_decided_as_in_the_batch(world, tmp_path):
    manifest = generate_batch(world["master"], tmp_path / "batch", 300, seed=37, mix=Mix.clean())
    process(manifest, world["master"], tmp_path / "out")
    batch = {
        e["request_id"]: e
        for e in map(
            json.loads, (tmp_path / "out" / "auditors" / "evidence.jsonl").read_text().splitlines()
        )
    }
    with open(tmp_path / "out" / "auditors" / "decisions.csv", newline="", encoding="utf-8") as fh:
        decided = {d["request_id"]: d for d in csv.DictReader(fh)}
    policy = policy_in_force(load_policies(None), date(2025, 7, 25)).identification
    identifier = Identifier(world["master"], policy)
    parsed = read_manifest(manifest)
    codes = set()
    for request in RowStream(parsed.rows_path, parsed.rows_format, 500):
        found = identifier.identify(request)
        codes.add(found.code.value)
        assert found.code.value in decided[request.request_id]["reasons"].split(";"), (
            request.request_id
        )
        assert found.matched_tin == decided[request.request_id]["matched_tin"]
        expected = batch.get(request.request_id)
        if found.evidence is None:
            assert found.code.value == "ID_NO_CANDIDATE" and not (expected or {}).get(
                "candidate"
            ), request.request_id
            continue
        said = json.loads(json.dumps(found.evidence))
        assert said == {k: v for k, v in expected.items() if k in said}, request.request_id
        assert set(said) >= {"candidate", "fields", "rule", "runner_up", "names", "dob", "address"}
    identifier.close()
    assert {"ID_POSITIVE", "ID_NO_CANDIDATE"} <= codes and len(codes) >= 3  # not vacuous


def test_a_blocking_rule_becomes_an_index_key_only_when_it_is_equalities():
    from taxgate.identify.single import _blocking_key

    key = _blocking_key('(l."zip5" = r."zip5") AND (l."house_number" = r."house_number")')
    assert (
        key
        == "CASE WHEN zip5 IS NULL OR house_number IS NULL THEN NULL ELSE hash(zip5, house_number) END"
    )
    assert (
        _blocking_key('l."tin" = r."tin"') == "CASE WHEN tin IS NULL THEN NULL ELSE hash(tin) END"
    )
    # anything else is left to the rule itself, checked against every row: never a key that finds too little
    assert _blocking_key('l."dob" = r."dob" AND levenshtein(l."surname", r."surname") <= 1') is None
    assert _blocking_key('l."dob" = r."dob" OR l."tin" = r."tin"') is None
    assert _blocking_key('l."zip5" = r."house_number"') is None
