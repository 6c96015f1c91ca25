"""Score a lora/full fine-tuned backbone on every target over the test period."""

from eofm.data.qc import require_store_qc
from eofm.evaluate.weather import evaluate_finetuned
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    p = snakemake.params
    evaluate_finetuned(
        snakemake.input.stores,
        snakemake.input.static,
        snakemake.input.climatology,
        snakemake.input.weights,
        snakemake.input.finetuned,
        snakemake.input.finetuned_config,
        test_start=p.start,
        test_stop=p.stop,
        step_hours=p.step_hours,
        metrics_paths=snakemake.output.metrics,
        map_paths=snakemake.output.maps,
    )
