"""Training the identification model, seeded and reproducible, on a world with ground truth (a
master, a batch drawn from it and the batch's labels: `synth.training_world` makes one, `taxgate
model train` trains on it; this module never generates data).

u probabilities come from random pairs (seeded); m probabilities from labelled true pairs: a request
and the master row of the same taxpayer at the address they filed from, as filed (the request may
carry a
clerk's typing errors in it: the world is made with them, so the model learns what they cost). The prior is set from the
world: one true row per request among the master's address rows. The result is a Splink model file
(JSON) that `identify` loads; it is versioned by its file name and never retrained at run time.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from taxgate.identify.features import FEATURE_COLUMNS, address_features
from taxgate.identify.master import load_master
from taxgate.intake import RowStream, read_manifest
from taxgate.normalize.text import digits


def request_features_table(manifest: Path) -> pa.Table:
    """The model's columns for every readable request of a batch, keyed `R<row_number>`."""
    from taxgate.identify import request_features  # the pipeline's own function, not a copy

    parsed = read_manifest(manifest)
    rows = []
    for request in RowStream(parsed.rows_path, parsed.rows_format, 4000):
        if not request.malformed:
            rows.append((f"R{request.row_number}", request.request_id, *request_features(request)))
    names = ("unique_id", "request_id", *FEATURE_COLUMNS)
    return pa.table(
        {n: pa.array([r[i] or None for r in rows], pa.string()) for i, n in enumerate(names)}
    )


def train_model(out: Path, master: Path, manifest: Path, labels: Path, seed: int = 2026) -> Path:
    """Fit the model on a world: `master`, the batch of `manifest` drawn from it, and `labels` (one
    row per request: `request_id`, `true_tin`, `filed_address`, as `synth` writes them); `seed`
    seeds the random pairs. Writes the model to `out`."""
    from splink import DuckDBAPI, Linker

    from taxgate.identify.splink_settings import model_settings

    labels = pq.read_table(labels).to_pylist()
    con = duckdb.connect()
    load_master(con, master)
    con.register("req_arrow", request_features_table(manifest))
    # Truth: the same taxpayer at the same address as they filed it, whatever a clerk mistyped in
    # the request (a true pair with a misspelled street is what the typo levels must learn).
    truth = pa.table(
        {
            "request_id": [x["request_id"] for x in labels],
            "truth": [
                f"{digits(x['true_tin'])}#{_filed_key(x['filed_address'])}"
                if x["filed_address"]
                else None
                for x in labels
            ],
        }
    )
    con.register("labels_arrow", truth)
    con.execute(
        """
        CREATE TABLE train_requests AS
        SELECT r.* EXCLUDE (request_id), l.truth FROM req_arrow r JOIN labels_arrow l USING (request_id)
        """
    )
    con.execute(
        "CREATE TABLE train_master AS SELECT * EXCLUDE (first_year, last_year), tin || '#' || "
        "address_key AS truth FROM master_addresses"
    )
    db = DuckDBAPI(connection=con)
    settings = model_settings()
    rows = con.execute("SELECT count(*) FROM train_master").fetchall()[0][0]
    settings.probability_two_random_records_match = 1.0 / rows
    linker = Linker(
        [
            db.register("train_requests", dataset_display_name="requests"),
            db.register("train_master", dataset_display_name="master"),
        ],
        settings,
        log_level=logging.WARNING,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=2e6, seed=seed)
    linker.training.estimate_m_from_label_column("truth")
    out.parent.mkdir(parents=True, exist_ok=True)
    linker.misc.save_model_to_json(str(out), overwrite=True)
    con.close()
    _floor_unseen_m(out)
    return out


def _filed_key(filed: str) -> str:
    a = json.loads(filed)
    return address_features(a["street"], a["unit"], a["city"], a["state"], a["zip"])[-1]


M_FLOOR = 1e-3


def _floor_unseen_m(model: Path) -> None:
    """Give every level that no true pair reached (an address or TIN that disagrees, say) a small m
    instead of leaving it to Splink's default: such a disagreement then weighs strongly against a
    match, which is what rule 3 and rule 4 mean. The m values of each comparison still sum to 1.
    A level no random pair reached gets the smallest u its comparison measured."""
    settings = json.loads(model.read_text())
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        seen_u = [lv["u_probability"] for lv in levels if lv.get("u_probability") is not None]
        for level in levels:
            if level.get("m_probability") is None:
                level["m_probability"] = M_FLOOR
            if level.get("u_probability") is None:
                # no random pair reached it: as rare as the rarest level that one did, no rarer, so a
                # level the sample missed weighs no more than the evidence that was measured
                level["u_probability"] = min(seen_u)
        total = sum(lv["m_probability"] for lv in levels)
        for level in levels:
            level["m_probability"] = level["m_probability"] / total
    settings.pop("linker_uid", None)  # a fresh id each run would make the file differ for nothing
    model.write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")
