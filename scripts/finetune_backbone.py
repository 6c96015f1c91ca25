"""Fine-tune a backbone online (lora or full mode) with one MLP head per target."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.train.finetune import FinetuneSettings, finetune

with job_log(snakemake.log[0], snakemake.threads):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    p = snakemake.params
    settings = FinetuneSettings(
        mode=p.mode,
        targets=tuple(p.targets),
        hidden=tuple(p.hidden),
        residual=p.residual,
        step_hours=p.step_hours,
        train_start=p.start,
        train_stop=p.stop,
        **p.training,
    )
    finetune(
        snakemake.input.stores,
        snakemake.input.static,
        snakemake.input.stats,
        snakemake.input.climatology,
        snakemake.input.weights,
        snakemake.input.backbone_config,
        settings,
        snakemake.output.weights,
        snakemake.output.config,
        snakemake.output.summary,
        p.checkpoint_dir,
    )
