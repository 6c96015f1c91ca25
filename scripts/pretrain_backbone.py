"""Pretrain the backbone on next-step forecasting (no pretrained weights configured)."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.train.pretrain import PretrainSettings, pretrain

with job_log(snakemake.log[0], snakemake.threads):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    p = snakemake.params
    settings = PretrainSettings(
        model=p.model,
        size=p.size,
        levels=tuple(p.levels),
        step_hours=p.step_hours,
        train_start=p.start,
        train_stop=p.stop,
        **p.training,
    )
    pretrain(
        snakemake.input.stores,
        snakemake.input.static,
        snakemake.output.weights,
        snakemake.output.config,
        snakemake.output.summary,
        settings,
        p.checkpoint_dir,
        stats_path=snakemake.input.stats,
    )
