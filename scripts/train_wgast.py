"""Train WGAST on an area's patch store."""

from eofm.config import WgastModelSettings, WgastTrainSettings
from eofm.logs import job_log
from eofm.train.wgast import train_wgast

with job_log(snakemake.log[0], snakemake.threads):
    train_wgast(
        snakemake.input.patches,
        snakemake.output.weights,
        snakemake.output.config,
        snakemake.output.summary,
        model=WgastModelSettings.from_dict(snakemake.params.model),
        train=WgastTrainSettings.from_dict(snakemake.params.train),
        checkpoint_dir=snakemake.params.checkpoint_dir,
    )
