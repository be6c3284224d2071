"""Runs the conformance cases: every YAML file here but `_world.yaml` is one rule family.

A case is a batch built from `_world.yaml` with the case's changes, run through the whole pipeline
(`taxgate.pipeline.process`); its expectations are checked against the audit file, decisions.csv.
A case whose every row is expected REFUSED also runs through the rules alone, as OpenFisca runs a
formula (`test_case_through_the_rules`: intake, the batch's figures and every rule, the decision,
no identification, no store; milliseconds): the default, fast subset runs those and a handful of
cases end to end (the first of each family), and the full suite runs every case end to end too.

Case keys:
  id, says          a name and one sentence of what the law requires
  request           changes to the world's request (a batch of one)
  rows              several rows: each {request: {...}, repeat: N, expect: {...}}; "{n}" in a value
                    becomes the row's number within its group
  raw_rows          the rows file's data lines verbatim (CSV, header added); {BAD_UTF8} becomes
                    bytes that are not UTF-8, {LONG:N} a field of N characters
  manifest          changes to the world's manifest
  policy_replace    [old, new] text replacements applied to the demo policy
  expect            {outcome, codes (exact, every code incl. ID_*), includes, excludes, released_zip,
                    figures: {CODE: {field: value}} (the figure behind the code in the decision's evidence)}
  batches           a sequence of batches into one store (cross_batch.yaml): each {manifest, rows, expect}
                    or {repeat_of: N, rows: [{expect}]}; "{b}" in a value becomes the batch's number;
                    `arrives` is the day it reaches the store (default: the day it says it was submitted)
"""

from __future__ import annotations

import copy
import csv
import json
import re
import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from taxgate import pipeline
from taxgate.decide import decide
from taxgate.domain import REQUEST_COLUMNS, ReasonCode
from taxgate.intake import read_manifest
from taxgate.pipeline import judging, process, workspace
from taxgate.policy import POLICY_DIR, load_policies, policy_in_force
from taxgate.rules import judge_batch, named_rule_set
from taxgate.synth import generate_master

HERE = Path(__file__).parent
WORLD = yaml.safe_load((HERE / "_world.yaml").read_text(encoding="utf-8"))
MASTER_COLUMNS = (
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
)


def _cases(refused_only: bool = False):
    for path in sorted(HERE.glob("*.yaml")):
        if path.name.startswith("_"):
            continue
        for number, case in enumerate(yaml.safe_load(path.read_text(encoding="utf-8"))["cases"]):
            if refused_only and not _refused_only(case):
                continue
            # end to end, the first case of each family is in the fast subset; the rest are slow
            marks = () if refused_only or number == 0 else (pytest.mark.slow,)
            yield pytest.param(case, id=f"{path.stem}:{case['id']}", marks=marks)


def _refused_only(case: dict) -> bool:
    """Every row of the case is expected REFUSED, from one batch, with nothing identification or
    the recorded evidence would have to say: the rules alone decide it."""
    if "batches" in case:
        return False
    expects = case["expect_rows"] if "raw_rows" in case else [e for _, e in _expand(case)]
    return bool(expects) and all(
        e.get("outcome") == "REFUSED" and not {"figures", "released_zip"} & set(e) for e in expects
    )


def _expand(case: dict) -> list[tuple[dict, dict]]:
    """(row, expectation) pairs for the case."""
    if "rows" not in case:
        return [({**WORLD["request"], **case.get("request", {})}, case.get("expect", {}))]
    out = []
    for group_index, group in enumerate(case["rows"]):
        repeat = group.get("repeat", 1)
        for n in range(1, repeat + 1):
            row = {**WORLD["request"], **group.get("request", {})}
            row = {k: str(v).replace("{n}", str(n)) for k, v in row.items()}
            if repeat > 1 and "{n}" not in str(group.get("request", {}).get("request_id", "")):
                row["request_id"] = f"{row['request_id']}-{group_index}-{n}"
            out.append((row, group.get("expect", case.get("expect", {}))))
    return out


def _write_raw(path: Path, raw: str) -> None:
    data = ",".join(REQUEST_COLUMNS).encode() + b"\n"
    text = re.sub(r"\{LONG:(\d+)\}", lambda m: "x" * int(m.group(1)), raw)
    data += text.encode("utf-8").replace(b"{BAD_UTF8}", b"\xff\xfe")
    path.write_bytes(data)


@pytest.fixture(scope="session")
def master(tmp_path_factory) -> Path:
    """The world's taxpayers among a synthetic population of 3,000, as in a real master: name and
    street frequencies (the model's term-frequency adjustments) then mean what they would."""
    folder = tmp_path_factory.mktemp("conformance-master")
    background = folder / "background.parquet"
    generate_master(3_000, background, seed=1)
    world = pa.Table.from_pylist(
        [
            {c: str(r.get(c, "")) for c in MASTER_COLUMNS if c != "tax_year"}
            | {"tax_year": int(r["tax_year"])}
            for r in WORLD["master"]
        ]
    )
    population = pq.read_table(background)
    combined = pa.concat_tables([population, world.cast(population.schema)])
    world_tins = set(world["tin"].to_pylist())
    assert not world_tins & set(population["tin"].to_pylist()), "the background reuses a world TIN"
    pq.write_table(combined, folder / "master.parquet")
    return folder / "master.parquet"


def _policy(case: dict, folder: Path) -> Path | None:
    if "policy_replace" not in case:
        return None
    text = next(POLICY_DIR.glob("*.toml")).read_text(encoding="utf-8")
    for old, new in case["policy_replace"]:
        assert old in text, f"policy_replace: {old!r} is not in the demo policy"
        text = text.replace(old, new)
    policy = folder / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    return policy


def _write_batch(folder: Path, case: dict, changes: dict) -> list:
    """The batch's manifest and rows file in `folder`; returns each row's expectation."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = copy.deepcopy(WORLD["manifest"])
    for key, value in changes.items():
        if value is None:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    manifest["requests"] = "rows.csv"
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    if "raw_rows" in case:
        _write_raw(folder / "rows.csv", case["raw_rows"])
        return list(case["expect_rows"])
    pairs = _expand(case)
    with open(folder / "rows.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(REQUEST_COLUMNS)
        for row, _ in pairs:
            writer.writerow(str(row.get(c, "") or "") for c in REQUEST_COLUMNS)
    return [expect for _, expect in pairs]


def _check(folder: Path, expected: list[dict], where_: str = "") -> None:
    out = folder / "out"
    with open(out / "auditors" / "decisions.csv", newline="", encoding="utf-8") as fh:
        decisions = list(csv.DictReader(fh))
    with open(out / "response.csv", newline="", encoding="utf-8") as fh:
        responses = list(csv.DictReader(fh))
    with open(out / "auditors" / "evidence.jsonl", encoding="utf-8") as fh:
        evidence = {e["row_number"]: e for e in map(json.loads, fh)}
    assert len(decisions) == len(expected), "every row must end with exactly one decision"

    for index, (expect, decision, response) in enumerate(zip(expected, decisions, responses)):
        where = f"{where_}row {index + 1} ({decision['request_id']})"
        codes = {c for c in decision["reasons"].split(";") if c}
        assert all(c in ReasonCode.__members__ for c in codes)
        if "outcome" in expect:
            assert decision["outcome"] == expect["outcome"], f"{where}: codes {sorted(codes)}"
        if "codes" in expect:
            assert codes == set(expect["codes"]), where
        for code in expect.get("includes", []):
            assert code in codes, f"{where}: {code} missing from {sorted(codes)}"
        for code in expect.get("excludes", []):
            assert code not in codes, f"{where}: {code} present"
        if "refused_items" in expect:
            assert response["refused_items"] == expect["refused_items"], where
        if "released_zip" in expect:
            assert response["address_zip"] == str(expect["released_zip"]), where
        for code, figure in expect.get(
            "figures", {}
        ).items():  # the figure behind the code, as recorded
            recorded = evidence.get(index + 1, {}).get("figures", {}).get(code, {})
            assert {k: recorded.get(k) for k in figure} == figure, (
                f"{where}: {code} evidence {recorded}"
            )
        if response["outcome"] != "DISCLOSED":
            assert not any(response[f"address_{p}"] for p in ("street", "city", "state", "zip")), (
                where
            )


def _batch_rows(batch: dict, number: int) -> dict:
    """A batch of a cross-batch case as a one-batch case: "{b}" filled in, request ids per batch."""
    groups = []
    for group in batch["rows"]:
        request = dict(group.get("request", {}))
        request.setdefault("request_id", f"B{number}-{WORLD['request']['request_id']}")
        request = {k: str(v).replace("{b}", str(number)) for k, v in request.items()}
        groups.append({**group, "request": request})
    return {**batch, "rows": groups}


@pytest.mark.parametrize("case", list(_cases(refused_only=True)))
def test_case_through_the_rules(case: dict, tmp_path: Path) -> None:
    """The pipeline's own passes up to the decision, without identification or a store: staging
    (intake), the batch's keys and figures (`rules.KEYS_SQL`, `ROW_STATS_SQL`, no history), every
    rule on every row (`pipeline.judging.judge_chunk`, what a worker runs), then `decide`."""
    expected = _write_batch(tmp_path, case, case.get("manifest", {}))
    manifest = read_manifest(tmp_path / "manifest.json")
    as_of = pipeline.judged_as_of(manifest, date.today())
    policy = policy_in_force(load_policies(_policy(case, tmp_path)), as_of)
    rules = named_rule_set("statute")
    with workspace(tmp_path / "out") as (work, con):
        stream = pipeline.stage(manifest, policy, work)
        stats = pipeline.batch_figures(con, work)  # no history: the batch's own figures
        batch_codes = tuple(judge_batch(manifest, policy, as_of))
        task = judging.RuleTask(
            work / "staged.parquet", 0, stats, policy, manifest, as_of, batch_codes, "statute"
        )
        judged, _ = judging.judge_chunk(task)
    assert stream.rows == judged.num_rows == len(expected), "every row ends with one decision"
    for index, (row, expect) in enumerate(zip(judged.to_pylist(), expected)):
        where = f"row {index + 1}"
        codes = [ReasonCode(c) for c in row["codes"].split(";") if c]
        refused = [i for i in row["refused_items"].split(";") if i]
        decision = decide(codes, refused, row["wants"], None, rules.releases)
        found = {c.value for c in decision.codes}
        assert decision.outcome.value == expect["outcome"], f"{where}: codes {sorted(found)}"
        if "codes" in expect:
            assert found == set(expect["codes"]), where
        for code in expect.get("includes", []):
            assert code in found, f"{where}: {code} missing from {sorted(found)}"
        for code in expect.get("excludes", []):
            assert code not in found, f"{where}: {code} present"
        if "refused_items" in expect:
            assert ";".join(decision.refused_items) == expect["refused_items"], where


@pytest.mark.parametrize("case", list(_cases()))
def test_case(case: dict, tmp_path: Path, master: Path) -> None:
    policy = _policy(case, tmp_path)
    if "batches" not in case:
        expected = _write_batch(tmp_path, case, case.get("manifest", {}))
        process(tmp_path / "manifest.json", master, tmp_path / "out", policy_path=policy)
        _check(tmp_path, expected)
        return
    # A sequence of batches into one store: each is judged with the ones before it.
    for number, batch in enumerate(case["batches"], start=1):
        folder = tmp_path / f"batch-{number}"
        if "repeat_of" in batch:
            source = tmp_path / f"batch-{batch['repeat_of']}"
            shutil.copytree(source, folder, ignore=shutil.ignore_patterns("out"))
            expected = [row.get("expect", batch.get("expect", {})) for row in batch["rows"]]
        else:
            changes = {
                **case.get("manifest", {}),
                "batch_ref": f"CROSS-{number}",
                **batch.get("manifest", {}),
            }
            expected = _write_batch(folder, _batch_rows(batch, number), changes)
        # Each batch arrives on the day it says it was submitted, unless the case says when.
        sent = json.loads((folder / "manifest.json").read_text(encoding="utf-8")).get(
            "submitted_at", ""
        )
        arrives = batch.get("arrives") or sent[:10]
        process(
            folder / "manifest.json",
            master,
            folder / "out",
            policy_path=policy,
            today=date.fromisoformat(str(arrives)) if arrives else None,
        )
        _check(folder, expected, f"batch {number}, ")
