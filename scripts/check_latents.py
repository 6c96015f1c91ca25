"""QC report of one latent store (shape, times, finiteness, spread)."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.train.latents import check_latents

with job_log(snakemake.log[0]):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    check_latents(
        snakemake.input.latents,
        snakemake.input.stores,
        snakemake.input.static,
        snakemake.input.backbone_config,
        snakemake.params.month,
        snakemake.params.step_hours,
        snakemake.output.report,
    )
