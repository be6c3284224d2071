"""What pass 3's workers send back (issue 17): each chunk's decisions as `pipeline.deciding.decide_rows`
returns them, pickled as a worker's answer is, and unpickled as the recording process takes it.

`taxgate process` of a 2025-shaped batch (`profile_rules.seeded_world`) in this process, with one
worker (so that every answer passes through here to be measured), into a fresh store. Prints the
answers' size and the seconds to pickle and unpickle them, as sent and, beside it, with each
decision's evidence fields sent too (`response.evidence_fields`, as they were before 2e87166).

    python benchmarks/answers.py [--requests 128000] [--taxpayers 250000]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import shutil
import time
from pathlib import Path

from profile_rules import seeded_world  # this folder's, on the path as the script's own

WORK = Path(__file__).parent / "_work" / "answers"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=128_000)
    parser.add_argument("--taxpayers", type=int, default=250_000)
    args = parser.parse_args()
    master, manifest = seeded_world(
        WORK / f"{args.taxpayers}-{args.requests}", args.taxpayers, args.requests
    )
    store_dir = WORK / "store"
    shutil.rmtree(store_dir, ignore_errors=True)
    store_dir.mkdir(parents=True)
    os.environ["TAXGATE_WORKERS"] = "1"
    os.environ["TAXGATE_LEDGER_KEY"] = str(store_dir / "ledger.key")

    from taxgate.pipeline import deciding, process
    from taxgate.response import evidence_fields
    from taxgate.store import open_store

    sent = {"rows": 0, "bytes": 0, "dump": 0.0, "load": 0.0}
    before = {"bytes": 0, "dump": 0.0, "load": 0.0}
    decide_rows = deciding.decide_rows

    def measure(into: dict, answer: list) -> None:
        started = time.perf_counter()
        pickled = pickle.dumps(answer, protocol=pickle.HIGHEST_PROTOCOL)
        into["dump"] += time.perf_counter() - started
        started = time.perf_counter()
        pickle.loads(pickled)
        into["load"] += time.perf_counter() - started
        into["bytes"] += len(pickled)

    def measured(batch, *rest):
        answer = decide_rows(batch, *rest)
        sent["rows"] += len(answer)
        measure(sent, answer)
        # index 12 is the evidence's JSON, 16 the fields the worker no longer sends
        fields = [evidence_fields(json.loads(row[12])) if row[12] else None for row in answer]
        measure(before, [(*row[:16], f, *row[17:]) for row, f in zip(answer, fields)])
        return answer

    deciding.decide_rows = measured
    store = open_store(f"sqlite:///{store_dir / 'taxgate.db'}")
    try:
        process(manifest, master, WORK / "out", store=store)
    finally:
        store.close()
    rows = sent["rows"]
    for name, figures in (("as sent", sent), ("with the evidence fields, as before", before)):
        print(
            f"{name}: {figures['bytes'] / 1e6:,.0f} MB for {rows:,} decisions "
            f"({figures['bytes'] / rows:,.0f} bytes each); pickled in {figures['dump']:.2f} s, "
            f"unpickled in {figures['load']:.2f} s"
        )


if __name__ == "__main__":
    main()
