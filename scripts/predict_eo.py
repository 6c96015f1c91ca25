"""Predict 10 m LST over the WGAST test pairs with one trained Prithvi-EO mode."""

from eofm.logs import job_log
from eofm.models.eo.predict import predict_eo

with job_log(snakemake.log[0], snakemake.threads):
    predict_eo(
        pairs_store=snakemake.input.stores,
        weights=snakemake.input.weights,
        model_config=snakemake.input.config,
        out_dir=snakemake.params.out_dir,
        lst_store=snakemake.output.lst,
        window=snakemake.params.window,
        stride=snakemake.params.stride,
    )
