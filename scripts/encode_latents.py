"""Encode one month with the frozen backbone into the latent cache."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.train.latents import encode_month

with job_log(snakemake.log[0], snakemake.threads):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    encode_month(
        snakemake.input.stores,
        snakemake.input.static,
        snakemake.input.weights,
        snakemake.input.backbone_config,
        snakemake.params.month,
        snakemake.params.step_hours,
        snakemake.output.latents,
    )
