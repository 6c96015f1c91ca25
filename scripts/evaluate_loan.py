"""The per-test-year table (LOAN, ablation, random forest) and ROC/PR curves."""

from pathlib import Path

from eofm.evaluate.fire import evaluate_fire
from eofm.logs import job_log

with job_log(snakemake.log[0], snakemake.threads):
    i, o = snakemake.input, snakemake.output
    figures = Path(o.curves)
    figures.mkdir(parents=True, exist_ok=True)
    tests = {int(year): path for year, path in snakemake.params.tests.items()}
    evaluate_fire(
        {"loan": (i.loan_weights, i.loan_config), "batchnorm": (i.bn_weights, i.bn_config)},
        i.rf_scores,
        tests,
        table_csv=o.csv,
        table_md=o.md,
        metrics_json=o.metrics,
        curves={y: (figures / f"roc-{y}.png", figures / f"pr-{y}.png") for y in tests},
        differences_csv=o.differences_csv,
        differences_md=o.differences_md,
        bootstrap=snakemake.params.bootstrap,
    )
