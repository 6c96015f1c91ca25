# eofm: reanalysis and satellite data → Zarr → foundation-model latents → decoders → skill.
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version

from eofm.config import ConfigError, validate

min_version("9.0")


configfile: "config/config.yaml"


# schema (defaults filled in) + what it cannot say (dates, spans, overlap): one line per error
try:
    validate(config, workflow.source_path("workflow/schemas/config.schema.yaml"), workflow.configfiles)
except ConfigError as error:
    raise WorkflowError(str(error)) from None


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/weather.smk"
include: "workflow/rules/lst.smk"
include: "workflow/rules/wildfire.smk"
include: "workflow/rules/eo.smk"
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


rule eo:
    """Only the Prithvi-EO stage (`snakemake eo`): every mode's summary and maps."""
    input:
        eo_outputs(),


rule loan_all:
    """Everything of the wildfire stage for the configured FireCube source (in `all` too)."""
    input:
        plan.loan_outputs(config),
