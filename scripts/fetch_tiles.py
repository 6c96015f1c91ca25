"""Fetch one month of one sensor's scenes over one area onto the area's grid."""

import eofm.workflow as plan
from eofm.config import load
from eofm.data.fetch import RetryPolicy
from eofm.data.tiles import fetch_tiles_month
from eofm.logs import job_log

# Settings come from the config; the rule's params list only those that shape the store,
# so that retry policy, publication lag or the period never trigger a refetch.
with job_log(snakemake.log[0]):
    w = snakemake.wildcards
    # the job's own files (its month's), not every file of the sensor's globs
    key = f"tiles.local.paths.{w.sensor}"
    settings = load(plan.pin_local_files(snakemake.config, key, snakemake.input.local))
    fetch_tiles_month(
        w.area,
        w.sensor,
        w.month,
        snakemake.output.store,
        settings.tiles,
        RetryPolicy.from_settings(settings.fetch),
    )
