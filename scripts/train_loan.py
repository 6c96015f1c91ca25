"""Train the LOAN CNN or its batch-norm ablation on the sample stores."""

from eofm.logs import job_log
from eofm.train.loan import train_loan

with job_log(snakemake.log[0], snakemake.threads):
    train_loan(
        snakemake.input.stores[0],
        snakemake.input.stores[1],
        loan=snakemake.params.loan,
        norm=snakemake.wildcards.norm,
        weights_path=snakemake.output.weights,
        config_path=snakemake.output.config,
        summary_path=snakemake.output.summary,
        checkpoint_dir=snakemake.params.checkpoint_dir,
    )
