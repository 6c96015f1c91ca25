"""One day's danger map over the whole cube (COG + PNG)."""

from eofm.evaluate.danger import make_danger_map
from eofm.io import write_json
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    i, o = snakemake.input, snakemake.output
    summary = make_danger_map(
        i.weights, i.config, i.train, i.stores, snakemake.wildcards.day,
        snakemake.params.settings, o.tif, o.png,
    )  # fmt: skip
    write_json(summary, o.summary)
