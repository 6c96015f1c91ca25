"""Score one decoder against climatology and persistence on the test period."""

from eofm.evaluate.weather import evaluate_decoder
from eofm.logs import job_log

with job_log(snakemake.log[0]):
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
