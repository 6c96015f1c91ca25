# eofm: reanalysis and satellite data → Zarr → foundation-model latents → decoders → skill.
from snakemake.utils import min_version, validate

min_version("9.0")


configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weather.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


# credentials: environment → a missing variable fails here, before any job starts
if required_envvars():

    envvars:
        *required_envvars(),


rule all:
    input:
        final_outputs(),
    default_target: True


rule data:
    """Only the data stage: every store, its QC and the manifest table (`snakemake data`)."""
    input:
        data_outputs(),
