"""Train the lightweight decoder of one new variable on cached latents."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.train.decoder import DecoderSettings, train_decoder
from eofm.train.latents import require_latent_qc

with job_log(snakemake.log[0], snakemake.threads):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    require_latent_qc(snakemake.input.qc)  # a bad latent cache stops here, like store QC
    p = snakemake.params
    training = dict(p.training)
    settings = DecoderSettings(
        target=p.target,
        hidden=tuple(training.pop("hidden")),
        train_start=p.start,
        train_stop=p.stop,
        **training,
    )
    train_decoder(
        snakemake.input.latents,
        snakemake.input.stores,
        snakemake.input.stats,
        snakemake.input.climatology,
        snakemake.input.backbone_config,
        settings,
        snakemake.output.weights,
        snakemake.output.config,
        snakemake.output.summary,
        p.checkpoint_dir,
    )
