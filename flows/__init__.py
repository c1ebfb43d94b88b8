"""Prefect flows of explained-recs.

Importing the package sets quiet local defaults before Prefect and implicit load (each only if
unset): one BLAS thread (implicit parallelises itself), no telemetry, and time for the first
start of Prefect's ephemeral server, which migrates its database.
"""

import os

for _name, _value in {
    "OPENBLAS_NUM_THREADS": "1",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}.items():
    os.environ.setdefault(_name, _value)
