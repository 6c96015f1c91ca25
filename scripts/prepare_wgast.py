"""Select an area's WGAST (t1, t2) pairs and write pairs.zarr, train.zarr and test.zarr."""

from eofm.config import load
from eofm.data.wgast_pairs import prepare_wgast
from eofm.logs import job_log

with job_log(snakemake.log[0]):
    prepare_wgast(
        modis=list(snakemake.input.modis),
        landsat=list(snakemake.input.landsat),
        sentinel2=list(snakemake.input.sentinel2),
        truth=list(snakemake.input.truth),
        pairs_out=snakemake.output.pairs,
        train_out=snakemake.output.train,
        test_out=snakemake.output.test,
        settings=load(snakemake.config).wgast.prepare,
        area=snakemake.wildcards.area,
        source=snakemake.wildcards.source,
    )
