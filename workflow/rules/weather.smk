# Weather foundation models: backbone weights, latent cache, lightweight decoders.


rule pretrain_backbone:
    """No pretrained weights configured: train the backbone briefly on next-step forecasts."""
    input:
        stores=era5_stores(TRAIN_MONTHS),
        static=f"resources/era5/{ERA5['source']}/static.zarr",
        qc=store_qc_reports(),
    output:
        weights="resources/weights/{backbone}/model.safetensors",
        config="resources/weights/{backbone}/config.json",
        summary=report(
            "results/pretrain/{backbone}.json",
            caption="../report/pretrain.rst",
            category="Backbone",
        ),
    params:
        model=WEATHER["model"],
        size=WEATHER["size"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        training=WEATHER["pretrain"],
        checkpoint_dir="checkpoints/pretrain_backbone/{backbone}",
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/pretrain_backbone/{backbone}.log",
    benchmark:
        "benchmarks/pretrain_backbone/{backbone}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/pretrain_backbone.py"


rule encode_latents:
    """Run the frozen backbone once per sample; keep the surface latent in Zarr.

    A cached DAG node: it reruns only when the weights, the input months, the code or
    the params change. Snakemake's between-workflow `cache:` is not used because it
    refuses rules that have a `benchmark:`, and every rule here records its cost.
    """
    input:
        stores=encode_inputs,
        static=f"resources/era5/{ERA5['source']}/static.zarr",
        weights="resources/weights/{backbone}/model.safetensors",
        config="resources/weights/{backbone}/config.json",
    output:
        latents=directory("resources/latents/{backbone}/{month}.zarr"),
        qc="results/qc/latents/{backbone}/{month}.json",
    params:
        step_hours=ERA5["step_hours"],
        month="{month}",
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/encode_latents/{backbone}/{month}.log",
    benchmark:
        "benchmarks/encode_latents/{backbone}/{month}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/encode_latents.py"


rule train_decoder:
    """One lightweight MLP decoder per new variable, trained on cached latents."""
    input:
        latents=latent_stores("{backbone}", TRAIN_MONTHS),
        stores=era5_stores(TRAIN_MONTHS),
        stats="resources/stats/era5.json",
        climatology="resources/stats/era5-climatology.zarr",
        backbone_config="resources/weights/{backbone}/config.json",
    output:
        weights="results/weather/{backbone}/decoder/{target}/model.safetensors",
        config="results/weather/{backbone}/decoder/{target}/config.json",
        summary="results/weather/{backbone}/decoder/{target}/train.json",
    params:
        target="{target}",
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        training=WEATHER["decoder"],
        checkpoint_dir="checkpoints/train_decoder/{backbone}/{target}",
    threads: 2
    resources:
        gpu=1,
    log:
        "logs/train_decoder/{backbone}/{target}.log",
    benchmark:
        "benchmarks/train_decoder/{backbone}/{target}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_decoder.py"
