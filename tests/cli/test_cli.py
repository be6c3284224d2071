"""The command line as a user meets it: exit codes, one-line errors, never a traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from support import assert_user_error, taxgate

pytestmark = pytest.mark.slow  # the command line in subprocesses


def test_missing_manifest(tmp_path):
    assert_user_error(
        taxgate(
            "process",
            tmp_path / "nope.json",
            "--master",
            tmp_path / "m.csv",
            "--out",
            tmp_path / "o",
        ),
        "manifest not found",
    )


def test_unknown_rows_format(tmp_path):
    (tmp_path / "m.json").write_text(json.dumps({"requests": "rows.xml"}))
    assert_user_error(
        taxgate(
            "process", tmp_path / "m.json", "--master", tmp_path / "m.csv", "--out", tmp_path / "o"
        ),
        "unknown rows format",
    )


def test_a_manifest_cannot_send_the_command_line_outside_its_folder(world, tmp_path):
    """`requests` is relative to the manifest: `taxgate process` does not open /etc/passwd for it."""
    for requests in ("/etc/passwd", "../../../../etc/passwd"):
        (tmp_path / "m.json").write_text(json.dumps({"requests": requests, "format": "csv"}))
        assert_user_error(
            taxgate(
                "process", tmp_path / "m.json", "--master", world["master"], "--out", tmp_path / "o"
            ),
            "relative to the manifest's folder",
        )
    assert not (tmp_path / "o").exists()


def test_a_policy_value_that_would_misbehave_is_one_line(world, tmp_path):
    from taxgate.policy import POLICY_DIR

    text = (
        (POLICY_DIR / "demo-2025.1.toml")
        .read_text(encoding="utf-8")
        .replace("threshold = 20.0", 'threshold = "high"')
    )
    (tmp_path / "p.toml").write_text(text, encoding="utf-8")
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            world["master"],
            "--out",
            tmp_path / "o",
            "--policy",
            tmp_path / "p.toml",
        ),
        "identification.threshold",
    )


def test_missing_master(world, tmp_path):
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            tmp_path / "absent.parquet",
            "--out",
            tmp_path / "o",
        ),
        "taxpayer master not found",
    )


def test_master_without_required_columns(world, tmp_path):
    (tmp_path / "master.csv").write_text("tin,name\n1,x\n")
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            tmp_path / "master.csv",
            "--out",
            tmp_path / "o",
        ),
        "lacks column",
    )


@pytest.mark.parametrize(
    "content, said",
    [
        (
            "tin,first_name,last_name,street,tax_year\n123456789,A,B,1 Main St,2021.0\n",
            "tax_year must be a year",
        ),
        (
            "tin;first_name;last_name;street;tax_year\n123456789;A;B;1 Main St;2021\n",
            "lacks column",
        ),  # not CSV's commas
    ],
)
def test_a_master_two_engines_would_read_apart_is_one_line(world, tmp_path, content, said):
    """A year written as a fraction, a file separated by semicolons: DuckDB would guess, Spark would
    stop or read it otherwise; taxgate refuses both alike, before either engine prepares anything."""
    (tmp_path / "master.csv").write_text(content)
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            tmp_path / "master.csv",
            "--out",
            tmp_path / "o",
        ),
        said,
    )


def test_a_master_with_a_number_for_a_tin_is_one_line(world, tmp_path):
    import duckdb

    duckdb.sql(f"""COPY (SELECT 12345678.0 AS tin, 'A' AS first_name, 'B' AS last_name, '1 Main St' AS street,
                         2021 AS tax_year) TO '{tmp_path / "master.parquet"}'""")
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            tmp_path / "master.parquet",
            "--out",
            tmp_path / "o",
        ),
        "tin is stored as DECIMAL(9,1), not text",
    )


def test_bad_policy(world, tmp_path):
    (tmp_path / "p.toml").write_text("nonsense = [")
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            world["master"],
            "--out",
            tmp_path / "o",
            "--policy",
            tmp_path / "p.toml",
        ),
        "not valid TOML",
    )


def test_serve_without_a_master_says_so(tmp_path):
    assert_user_error(taxgate("serve", "--database-url", f"sqlite:///{tmp_path}/s.db"), "--master")
    assert_user_error(
        taxgate(
            "serve",
            "--master",
            tmp_path / "none.parquet",
            "--database-url",
            f"sqlite:///{tmp_path}/s.db",
        ),
        "not found",
    )


def test_a_bad_database_url_is_one_line(world, tmp_path):
    assert_user_error(
        taxgate(
            "process",
            world["manifest"],
            "--master",
            world["master"],
            "--out",
            tmp_path / "o",
            "--database-url",
            "nosuchdb://x",
        ),
        "database URL",
    )


def test_rules_lists_every_code_with_its_citation_and_meaning():
    """`taxgate rules` is the legend: each code on one row with its citation and what it means."""
    from taxgate.domain import ReasonCode

    run = subprocess.run(
        [sys.executable, "-m", "taxgate", "rules"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert run.returncode == 0
    rows = {
        line.split("│")[1].strip(): line for line in run.stdout.splitlines() if line.count("│") == 5
    }
    for code in ReasonCode:
        assert code.citation in rows[code.value] and code.meaning in rows[code.value], code


def test_help_and_rules_read_right_at_80_columns():
    """At a terminal's 80 columns a reason code is never split mid-word, and a flag is shown as a
    flag, not as an option that takes a `<bool>`."""
    from taxgate.domain import ReasonCode

    env = {**os.environ, "COLUMNS": "80"}
    rules = subprocess.run(
        [sys.executable, "-m", "taxgate", "rules"], capture_output=True, text=True, env=env
    )
    assert all(code.value in rules.stdout for code in ReasonCode)
    helped = subprocess.run(
        [sys.executable, "-m", "taxgate", "report", "accounting", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert "--json" in helped.stdout and "<bool>" not in helped.stdout


def test_demo_end_to_end(tmp_path):
    run = taxgate("demo", "--out", tmp_path / "demo", "--taxpayers", 600, "--requests", 300)
    assert run.returncode == 0, run.stderr
    assert "DISCLOSED" in run.stdout and "REFUSED" in run.stdout
    for name in (
        "response.csv",
        "response.jsonl",
        "reasons.csv",
        "summary.json",
        "auditors/decisions.csv",
    ):
        assert (tmp_path / "demo" / "response" / name).exists()
    summary = json.loads((tmp_path / "demo" / "response" / "summary.json").read_text())
    # --requests is the number of rows sent (duplicates among them), and every row has its outcome
    assert summary["rows"] == 300 and sum(summary["outcomes"].values()) == summary["rows"]
    assert "Batch DHS-ICE-8-300: 300 requests" in run.stdout
    # the demo's figures and the report's agree: the statute's disclosures, the replay's apart
    statute = summary["outcomes"].get("DISCLOSED", 0)
    replayed = int(
        re.search(r"As practised in 2025: ([\d,]+) addresses disclosed", run.stdout)
        .group(1)
        .replace(",", "")
    )
    assert f"(under the statute: {statute:,})" in run.stdout
    report = (tmp_path / "demo" / "oversight-report.html").read_text()
    assert f'<th scope="row">Disclosures</th><td>{statute:,} (' in report
    assert (
        f'<th scope="row">Requests decided under the statute</th><td>{summary["rows"]:,}</td>'
        in report
    )
    assert f"{replayed:,} addresses that practice released" in report
    # the suggested next step runs as printed
    step = re.search(
        r"Why a request went as it did: (\S+) explain REQUEST_ID --response (\S+)", run.stdout
    )
    assert step and (step.group(1) == "taxgate" or Path(step.group(1)).is_file()), run.stdout


def test_synth_then_process(tmp_path):
    assert (
        taxgate("synth", "master", "--out", tmp_path / "m.parquet", "--taxpayers", 500).returncode
        == 0
    )
    assert (
        taxgate(
            "synth",
            "batch",
            "--master",
            tmp_path / "m.parquet",
            "--out",
            tmp_path / "b",
            "--size",
            100,
            "--format",
            "jsonl",
        ).returncode
        == 0
    )
    run = taxgate(
        "process",
        tmp_path / "b" / "manifest.json",
        "--master",
        tmp_path / "m.parquet",
        "--out",
        tmp_path / "o",
    )
    assert run.returncode == 0, run.stderr
    assert_user_error(
        taxgate(
            "synth",
            "batch",
            "--master",
            tmp_path / "m.parquet",
            "--out",
            tmp_path / "x",
            "--format",
            "xlsx",
        ),
        "unknown format",
    )


def test_synth_batch_mix_gives_the_2025_shape(tmp_path):
    assert (
        taxgate("synth", "master", "--out", tmp_path / "m.parquet", "--taxpayers", 300).returncode
        == 0
    )
    run = taxgate(
        "synth",
        "batch",
        "--master",
        tmp_path / "m.parquet",
        "--out",
        tmp_path / "b",
        "--size",
        120,
        "--mix",
        "boilerplate=1",
        "--mix",
        "single_officer=1",
    )
    assert run.returncode == 0, run.stderr
    run = taxgate(
        "process",
        tmp_path / "b" / "manifest.json",
        "--master",
        tmp_path / "m.parquet",
        "--out",
        tmp_path / "o",
    )
    summary = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert summary["outcomes"] == {"REFUSED": summary["rows"]}
    assert (
        summary["codes"]["RELEVANCE_NOT_SPECIFIC"]
        == summary["codes"]["ENGAGED_OFFICIAL_IMPLAUSIBLE"]
        == summary["rows"] - summary["malformed"]
    )
    assert_user_error(
        taxgate(
            "synth",
            "batch",
            "--master",
            tmp_path / "m.parquet",
            "--out",
            tmp_path / "x",
            "--mix",
            "nonsense=2",
        ),
        "--mix",
    )
