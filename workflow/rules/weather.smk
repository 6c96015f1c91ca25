# Weather foundation models: backbone weights, latent cache, lightweight decoders.


rule pretrain_backbone:
    """No pretrained weights configured: train the backbone briefly on next-step forecasts."""
    input:
        stores=era5_stores(MONTHS.train),
        static=ERA5_STATIC,
        stats=rules.compute_stats.output.stats,
        store_qc=store_qc(MONTHS.train),
    output:
        weights="resources/weights/{backbone}/scratch/model.safetensors",
        config="resources/weights/{backbone}/scratch/config.json",
        summary=report(
            "results/pretrain/{backbone}.json",
            caption="../report/pretrain.rst",
            category="Backbone",
        ),
    params:
        model=lambda wildcards: BACKBONES[wildcards.backbone],
        size=lambda wildcards: backbone_spec(wildcards.backbone)["size"],
        levels=ERA5["levels"],
        step_hours=ERA5["step_hours"],
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        training=WEATHER["pretrain"],
        checkpoint_dir="checkpoints/pretrain_backbone/{backbone}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("pretrain_backbone", trains_weights=True),
        runtime=job_runtime_min("pretrain_backbone", default_min=720),
    log:
        "logs/pretrain_backbone/{backbone}.log",
    benchmark:
        "benchmarks/pretrain_backbone/{backbone}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/pretrain_backbone.py"


rule import_weights:
    """Pretrained weights from a local file or the Hugging Face Hub (pinned, sha256-checked),
    converted into the project's safetensors + config pair."""
    input:
        static=ERA5_STATIC,
        store_qc=store_qc([]),
        stats=rules.compute_stats.output.stats,
        local=lambda wildcards: (
            [backbone_spec(wildcards.backbone)["weights"]["path"]]
            if "path" in backbone_spec(wildcards.backbone)["weights"]
            else []
        ),
    output:
        weights="resources/weights/{backbone}/imported/model.safetensors",
        config="resources/weights/{backbone}/imported/config.json",
        summary="results/weights/{backbone}.json",
    params:
        model=lambda wildcards: BACKBONES[wildcards.backbone],
        size=lambda wildcards: backbone_spec(wildcards.backbone)["size"],
        levels=ERA5["levels"],
        source=lambda wildcards: backbone_spec(wildcards.backbone)["weights"],
        allow_partial=lambda wildcards: backbone_spec(wildcards.backbone)["weights"].get(
            "allow_partial", False
        ),
    log:
        "logs/import_weights/{backbone}.log",
    benchmark:
        "benchmarks/import_weights/{backbone}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/import_weights.py"


rule encode_latents:
    """Run the frozen backbone once per sample; keep the surface latent in Zarr.

    A cached DAG node: it reruns only when the weights, the input months, the code or
    the params change. Snakemake's between-workflow `cache:` is not used because it
    refuses rules that have a `benchmark:`, and every rule here records its cost.
    """
    input:
        unpack(backbone_weights),
        stores=encode_inputs,
        static=ERA5_STATIC,
        store_qc=encode_store_qc,
    output:
        latents=directory("resources/latents/{backbone}/{month}.zarr"),
    params:
        step_hours=ERA5["step_hours"],
        month="{month}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("encode_latents", trains_weights=False),
        runtime=job_runtime_min("encode_latents", default_min=120),
    log:
        "logs/encode_latents/{backbone}/{month}.log",
    benchmark:
        "benchmarks/encode_latents/{backbone}/{month}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/encode_latents.py"


rule check_latents:
    """QC of one latent store: finite, the backbone's latent shape, the month's valid times.

    Gates decoder training the way the store QC gates the statistics.
    """
    input:
        latents=rules.encode_latents.output.latents,
        stores=encode_inputs,
        static=ERA5_STATIC,
        store_qc=encode_store_qc,
        backbone_config=lambda wildcards: backbone_weights(wildcards)["backbone_config"],
    output:
        report="results/qc/latents/{backbone}/{month}.json",
    params:
        month="{month}",
        step_hours=ERA5["step_hours"],
    log:
        "logs/check_latents/{backbone}/{month}.log",
    benchmark:
        "benchmarks/check_latents/{backbone}/{month}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/check_latents.py"


rule train_decoder:
    """One lightweight MLP decoder per new variable, trained on cached latents."""
    input:
        latents=expand(rules.encode_latents.output.latents, month=MONTHS.train, allow_missing=True),
        qc=expand(rules.check_latents.output.report, month=MONTHS.train, allow_missing=True),
        stores=era5_stores(MONTHS.train),
        store_qc=store_qc(MONTHS.train),
        stats=rules.compute_stats.output.stats,
        climatology=rules.compute_stats.output.climatology,
        backbone_config=lambda wildcards: backbone_weights(wildcards)["backbone_config"],
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
        mem_mb=job_memory_mb("train_decoder", trains_weights=False),
        runtime=job_runtime_min("train_decoder", default_min=240),
    log:
        "logs/train_decoder/{backbone}/{target}.log",
    benchmark:
        "benchmarks/train_decoder/{backbone}/{target}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_decoder.py"


rule finetune_backbone:
    """The lora or full mode: the backbone trains online together with one MLP per target."""
    input:
        unpack(backbone_weights),
        stores=era5_stores(MONTHS.train),
        static=ERA5_STATIC,
        store_qc=store_qc(MONTHS.train),
        stats=rules.compute_stats.output.stats,
        climatology=rules.compute_stats.output.climatology,
    output:
        weights="results/weather/{backbone}/{mode}/model.safetensors",
        config="results/weather/{backbone}/{mode}/config.json",
        summary="results/weather/{backbone}/{mode}/train.json",
    params:
        mode="{mode}",
        targets=TARGETS,
        step_hours=ERA5["step_hours"],
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        hidden=WEATHER["decoder"]["hidden"],
        residual=WEATHER["decoder"]["residual"],
        training=WEATHER["finetune"],
        checkpoint_dir="checkpoints/finetune_backbone/{backbone}/{mode}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("finetune_backbone", trains_weights=lambda w: w.mode == "full"),
        runtime=job_runtime_min("finetune_backbone", default_min=720),
    log:
        "logs/finetune_backbone/{backbone}/{mode}.log",
    benchmark:
        "benchmarks/finetune_backbone/{backbone}/{mode}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/finetune_backbone.py"
