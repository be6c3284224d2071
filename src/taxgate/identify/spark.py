"""A local Spark session for Splink's Spark backend (`TAXGATE_MATCH_BACKEND=spark`).

Local mode on this machine's cores; a cluster is configured the usual Spark way (SPARK_* settings,
`spark-defaults.conf`), its executors with taxgate installed in the Python they run
(`PYSPARK_PYTHON`): master preparation runs taxgate's normalisers on them. Splink's similarity
functions come from the jar it ships.
"""

from __future__ import annotations

import os
import sys
import tempfile
from functools import lru_cache


@lru_cache(maxsize=1)
def session():
    from pyspark.sql import SparkSession
    from splink.internals.spark.jar_location import similarity_jar_location

    # The workers' Python is this one, with taxgate in it (master preparation runs its normalisers
    # there); PySpark reads it from the environment only.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    spark = (
        SparkSession.builder.master(os.environ.get("TAXGATE_SPARK_MASTER", "local[2]"))
        .appName("taxgate")
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", os.environ.get("TAXGATE_SPARK_PARTITIONS", "8"))
        # its catalog's folder, which Spark would otherwise make in the working directory
        .config("spark.sql.warehouse.dir", tempfile.mkdtemp(prefix="taxgate-spark-warehouse-"))
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.driver.memory", os.environ.get("TAXGATE_SPARK_DRIVER_MEMORY", "4g"))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(tempfile.mkdtemp(prefix="taxgate-spark-"))
    return spark
