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


# --- model, prediction, evaluation


rule train_wgast:
    """WGAST generator + PatchGAN, weakly supervised by Landsat t2 at 30 m."""
    input:
        patches=wgast_store("train"),
    output:
        weights="results/wgast/{area}/model.safetensors",
        config="results/wgast/{area}/config.json",
        summary="results/wgast/{area}/train.json",
    params:
        model=WGAST["model"],
        train=WGAST["train"],
        checkpoint_dir="checkpoints/train_wgast/{area}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=wgast_memory_mb("train_wgast"),
        runtime=job_runtime_min("train_wgast", default_min=240),
    log:
        "logs/train_wgast/{area}.log",
    benchmark:
        "benchmarks/train_wgast/{area}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_wgast.py"


rule predict_wgast:
    """10 m LST of every test date: one COG each and a Zarr series."""
    input:
        pairs=wgast_store("pairs"),
        weights=rules.train_wgast.output.weights,
        config=rules.train_wgast.output.config,
    output:
        cogs=directory("results/wgast/{area}/cogs"),
        series=directory("results/wgast/{area}/lst.zarr"),
    params:
        predict=WGAST["predict"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=wgast_memory_mb("predict_wgast"),
        runtime=job_runtime_min("predict_wgast", default_min=60),
    log:
        "logs/predict_wgast/{area}.log",
    benchmark:
        "benchmarks/predict_wgast/{area}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict_wgast.py"


rule evaluate_wgast:
    """Per-test-date metrics of WGAST, the baselines and each Prithvi-EO mode; map figures."""
    input:
        pairs=wgast_store("pairs"),
        series=rules.predict_wgast.output.series,
        eo=eo_series,
    output:
        csv=report(
            "results/tables/wgast-{area}.csv",
            caption="../report/wgast.rst",
            category="LST",
        ),
        md="results/tables/wgast-{area}.md",
        figures=report(
            directory("results/figures/wgast/{area}"),
            patterns=["map_{date}.png"],
            caption="../report/wgast-map.rst",
            category="LST",
        ),
    log:
        "logs/evaluate_wgast/{area}.log",
    benchmark:
        "benchmarks/evaluate_wgast/{area}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/evaluate_wgast.py"
