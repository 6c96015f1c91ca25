"""Fit the random-forest baseline and score the test years."""

from eofm.evaluate.fire import score_random_forest
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    score_random_forest(
        snakemake.input.train,
        {int(year): path for year, path in snakemake.params.tests.items()},
        baseline=snakemake.params.baseline,
        scores_path=snakemake.output.scores,
    )
