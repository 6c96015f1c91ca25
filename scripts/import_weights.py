"""Import pretrained backbone weights (local file or Hugging Face Hub) as safetensors."""

from eofm.data.qc import require_store_qc
from eofm.logs import job_log
from eofm.models.weather.checkpoints import import_weights

with job_log(snakemake.log[0]):
    require_store_qc(snakemake.input.store_qc)  # a store that failed QC stops here
    p = snakemake.params
    import_weights(
        p.model,
        p.size,
        p.levels,
        snakemake.input.static,
        p.source,
        snakemake.output.weights,
        snakemake.output.config,
        snakemake.output.summary,
        stats_path=snakemake.input.stats,
        allow_partial=p.allow_partial,
    )
