"""Score one decoder against climatology and persistence on the test period."""

from eofm.data.qc import require_store_qc
from eofm.evaluate.weather import evaluate_decoder
from eofm.logs import job_log
from eofm.train.latents import require_latent_qc

with job_log(snakemake.log[0]):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    require_latent_qc(snakemake.input.qc)  # scores on a bad latent cache would mislead
    p = snakemake.params
    evaluate_decoder(
        snakemake.input.latents,
        snakemake.input.stores,
        snakemake.input.climatology,
        snakemake.input.weights,
        snakemake.input.config,
        model=p.model,
        target=p.target,
        test_start=p.start,
        test_stop=p.stop,
        step_hours=p.step_hours,
        metrics_path=snakemake.output.metrics,
        map_path=snakemake.output.map,
    )
