# LST fusion (WGAST): tile stores → (t1, t2) pairs and patches → model → 10 m daily LST.


rule prepare_wgast:
    """Pairs of an area's MODIS/Landsat/Sentinel-2 stores meeting the validity threshold,
    gap-filled, indices, upsampled to 10 m; patches per split (train dates before test)."""
    input:
        modis=wgast_tile_stores("modis"),
        landsat=wgast_tile_stores("landsat"),
        sentinel2=wgast_tile_stores("sentinel2"),
        truth=wgast_tile_stores("truth"),
    output:
        pairs=directory("resources/wgast/{source}/{area}/pairs.zarr"),
        train=directory("resources/wgast/{source}/{area}/train.zarr"),
        test=directory("resources/wgast/{source}/{area}/test.zarr"),
    params:
        prepare=WGAST["prepare"],
    log:
        "logs/prepare_wgast/{source}/{area}.log",
    benchmark:
        "benchmarks/prepare_wgast/{source}/{area}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/prepare_wgast.py"
