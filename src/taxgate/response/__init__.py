"""Response: the files the requester and the auditors receive (docs/DESIGN.md "Data formats").

- response.csv / response.jsonl: for the requester; request-level codes only, the address only
  when DISCLOSED.
- auditors/decisions.csv: for the tax agency's auditors; every code, the candidate and runner-up.
- malformed_rows.csv: which rows could not be read and why, so the requester can resend them.
- reasons.csv: the legend beside the response: every code a requester can be given, the provisions it
  applies, what it means, and how many of this response's requests carry it.
- auditors/evidence.jsonl: for auditors and `taxgate explain`; per identified request, the candidate, the
  runner-up and every field's comparison level and weight.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from taxgate.decide import Decision
from taxgate.domain import Outcome, ReasonCode, Request

# row_number first: a request id may repeat within a batch, a row number never does
RESPONSE_COLUMNS = (
    "row_number",
    "request_id",
    "outcome",
    "reasons",
    "refused_items",
    "address_street",
    "address_unit",
    "address_city",
    "address_state",
    "address_zip",
    "address_tax_year",
    "ledger_index",
)
DECISION_COLUMNS = (
    "request_id",
    "outcome",
    "reasons",
    "matched_tin",
    "match_weight",
    "runner_up_tin",
    "runner_up_weight",
    "rule_set_version",
    "model_version",
)
MALFORMED_COLUMNS = ("row_number", "request_id", "problem")
LEGEND_COLUMNS = ("code", "level", "citation", "meaning")


_OUTCOME, _REQUEST_ID, _ROW_NUMBER = (
    json.dumps(k) for k in ("outcome", "request_id", "row_number")
)
# json.dumps with options builds an encoder on every call; these are its encoders, built once (the
# same options, so the same bytes), for the several values of every row.
_DUMPS = json.JSONEncoder().encode
_DUMPS_SORTED = json.JSONEncoder(sort_keys=True).encode
_DUMPS_UNICODE = json.JSONEncoder(ensure_ascii=False).encode


def legend(requester: bool = True) -> list[dict[str, str]]:
    """Every reason code (a requester's: those it can be given) with its citation and meaning."""
    return [
        {"code": c.value, "level": c.level.value, "citation": c.citation, "meaning": c.meaning}
        for c in ReasonCode
        if c.requester_visible or not requester
    ]


_ADDRESS_PARTS = ("street", "unit", "city", "state", "zip", "tax_year")


def _weight(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def evidence_fields(evidence: dict) -> dict[str, tuple[str, str]]:
    """Each top-level field of a decision's evidence as JSON (key, value), each value serialised
    once: `evidence_json` joins them into what `json.dumps(evidence, sort_keys=True)` writes (the
    store's copy) and evidence.jsonl writes them beside the request's own fields."""
    return {k: (_DUMPS(k), _DUMPS_SORTED(v)) for k, v in evidence.items()}


def evidence_json(fields: dict[str, tuple[str, str]]) -> str:
    """`json.dumps(evidence, sort_keys=True)`, byte for byte, from `evidence_fields(evidence)`."""
    return "{" + ", ".join(f"{fields[k][0]}: {fields[k][1]}" for k in sorted(fields)) + "}"


def spreadsheet_safe(value: object) -> object:
    """A cell a spreadsheet will not run: text starting like a formula gets a leading apostrophe
    (OWASP "CSV injection"). Only CSV files get this; JSON Lines carry the values exactly."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


class SafeCSV:
    """csv.writer over `fh` whose every cell passes through `spreadsheet_safe`."""

    def __init__(self, fh, **options):
        self._writer = csv.writer(fh, **options)

    def writerow(self, row) -> None:
        # spreadsheet_safe, inlined: it runs on every cell of every response
        self._writer.writerow(
            ["'" + v if isinstance(v, str) and v.startswith(FORMULA_PREFIXES) else v for v in row]
        )

    def writerows(self, rows) -> None:
        for row in rows:
            self.writerow(row)


AUDITORS = "auditors"  # the folder, beside the requester's files, of what only the tax agency reads


def auditors(out_dir: Path) -> Path:
    """Where decisions.csv and evidence.jsonl go: a folder of their own, so that sending the response
    folder's files to the requester can never send them (they name other taxpayers' TINs)."""
    return out_dir / AUDITORS


class _Text:
    """A csv writer whose rows come back as text (`row`), for `lines`."""

    def __init__(self) -> None:
        self._buffer = io.StringIO()
        self._writer = SafeCSV(self._buffer)

    def row(self, values) -> str:
        self._buffer.seek(0)
        self._buffer.truncate()
        self._writer.writerow(values)
        return self._buffer.getvalue()


_TEXT = _Text()


def lines(
    request: Request,
    decision: Decision,
    address: dict[str, str] | None,
    evidence: dict[str, tuple[str, str]] | None,
    versions: tuple[str, str],
) -> tuple:
    """What `ResponseWriter` writes for one decided request, but for its ledger index, known only
    once the request is recorded: (response.csv's row, response.jsonl's line, decisions.csv's row,
    malformed_rows.csv's row or "", evidence.jsonl's line or "", the requester's codes that
    reasons.csv counts). Made where the request is decided (pass 3's workers), so that the process
    that records every row only adds the index (`ResponseWriter.write_lines`); a plain tuple,
    which pickles fast. `evidence` as `evidence_fields` gives it, `versions` the rule-set and model
    versions."""
    released = address if decision.outcome is Outcome.DISCLOSED and address else {}
    row = {
        "row_number": str(request.row_number),
        "request_id": request.display_id,
        "outcome": decision.outcome.value,
        "reasons": ";".join(c.value for c in decision.requester_codes),
        "refused_items": ";".join(decision.refused_items),
        **{f"address_{p}": str(released.get(p, "") or "") for p in _ADDRESS_PARTS},
        "ledger_index": "",  # last: `write_lines` puts the index in its place
    }
    given = tuple(c.value for c in decision.requester_codes)
    decisions = _TEXT.row(
        (
            request.display_id,
            decision.outcome.value,
            ";".join(c.value for c in decision.codes),
            decision.matched_tin,
            _weight(decision.match_weight),
            decision.runner_up_tin,
            _weight(decision.runner_up_weight),
            *versions,
        )
    )
    malformed = (
        _TEXT.row((request.row_number, request.request_id, request.parse_error))
        if request.malformed
        else ""
    )
    line = ""
    if (
        evidence
    ):  # the request's own fields first: one of the evidence's, if named alike, wins (as in a dict)
        line = (
            evidence_json(
                {
                    "outcome": (_OUTCOME, _DUMPS(decision.outcome.value)),
                    "request_id": (_REQUEST_ID, _DUMPS(request.display_id)),
                    "row_number": (_ROW_NUMBER, str(request.row_number)),
                    **evidence,
                }
            )
            + "\n"
        )
    return (
        _TEXT.row(row[c] for c in RESPONSE_COLUMNS),
        _DUMPS_UNICODE(row) + "\n",
        decisions,
        malformed,
        line,
        given,
    )


# The blank ledger index at the end of each line `lines` makes, which `write_lines` fills: the last
# cell of a CSV row (a blank cell is written as nothing, and digits need no quotes) and the last
# value of a JSON object (its key written last, as the row's dict holds it).
_CSV_END, _JSON_END = "\r\n", '"}\n'


class ResponseWriter:
    """Streams the output files; use as a context manager."""

    def __init__(self, out_dir: Path, rule_set_version: str, model_version: str):
        auditors(out_dir).mkdir(parents=True, exist_ok=True)
        self.out_dir = out_dir
        self.versions = (rule_set_version, model_version)
        self._files = [
            open(folder / name, "w", encoding="utf-8", newline="")
            for folder, name in (
                (out_dir, "response.csv"),
                (out_dir, "response.jsonl"),
                (auditors(out_dir), "decisions.csv"),
                (out_dir, "malformed_rows.csv"),
                (auditors(out_dir), "evidence.jsonl"),
            )
        ]
        SafeCSV(self._files[0]).writerow(RESPONSE_COLUMNS)
        SafeCSV(self._files[2]).writerow(DECISION_COLUMNS)
        SafeCSV(self._files[3]).writerow(MALFORMED_COLUMNS)
        self._given: Counter[str] = Counter()

    def __enter__(self) -> ResponseWriter:
        return self

    def __exit__(self, *exc) -> None:
        for f in self._files:
            f.close()
        with open(self.out_dir / "reasons.csv", "w", encoding="utf-8", newline="") as fh:
            writer = SafeCSV(fh)
            writer.writerow((*LEGEND_COLUMNS, "requests"))
            writer.writerows((*row.values(), self._given.get(row["code"], 0)) for row in legend())

    def write(
        self,
        request: Request,
        decision: Decision,
        address: dict[str, str] | None,
        evidence: dict[str, tuple[str, str]] | None = None,
        ledger_index: str = "",
    ) -> None:
        """One decided request into every file; `evidence` as `evidence_fields` gives it."""
        self.write_lines(
            [lines(request, decision, address, evidence, self.versions)], [ledger_index]
        )

    def write_lines(self, rows: Sequence[tuple], ledger_indexes: Sequence[object]) -> None:
        """Decided requests as `lines` made them, each with its ledger index, into every file."""
        response, jsonl, decisions, malformed, evidence = [], [], [], [], []
        given = self._given
        for (csv_row, json_line, decision_row, bad, line, codes), index in zip(
            rows, ledger_indexes
        ):
            response.append(f"{csv_row[: -len(_CSV_END)]}{index}{_CSV_END}")
            jsonl.append(f"{json_line[: -len(_JSON_END)]}{index}{_JSON_END}")
            decisions.append(decision_row)
            malformed.append(bad)
            evidence.append(line)
            given.update(codes)
        for fh, text in zip(self._files, (response, jsonl, decisions, malformed, evidence)):
            fh.write("".join(text))
