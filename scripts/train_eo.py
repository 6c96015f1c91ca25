"""Train one Prithvi-EO mode on the WGAST training patches."""

from eofm.logs import job_log
from eofm.train.eo import train_eo_from_settings

with job_log(snakemake.log[0], snakemake.threads):
    p = snakemake.params
    train_eo_from_settings(
        eo=p.eo,
        mode=snakemake.wildcards.eo_mode,
        train_start=p.start,
        train_stop=p.stop,
        train_store=snakemake.input.stores,
        weights=snakemake.output.weights,
        model_config=snakemake.output.config,
        summary=snakemake.output.summary,
        checkpoint_dir=p.checkpoint_dir,
    )
