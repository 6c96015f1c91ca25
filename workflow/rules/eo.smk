# Prithvi-EO through terratorch on the WGAST 10 m LST task: one model per mode.


rule train_eo:
    """Train one mode (decoder, vpt, lora, full) on the WGAST training patches."""
    input:
        stores=wgast_store("train"),
        local=eo_local_weights(),
    output:
        weights="resources/eo/{area}/{eo_mode}/model.safetensors",
        config="resources/eo/{area}/{eo_mode}/model.json",
        summary="results/eo/{area}/{eo_mode}/training.json",
    params:
        eo=EO,
        start=PERIOD["train"]["start"],
        stop=PERIOD["train"]["stop"],
        checkpoint_dir="checkpoints/train_eo/{area}/{eo_mode}",
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("train_eo", trains_weights=True),
        runtime=job_runtime_min("train_eo", default_min=240),
    log:
        "logs/train_eo/{area}/{eo_mode}.log",
    benchmark:
        "benchmarks/train_eo/{area}/{eo_mode}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_eo.py"


rule predict_eo:
    """10 m LST over the test pairs: one COG per t2 date and lst.zarr, as WGAST writes."""
    input:
        stores=wgast_store("pairs"),
        weights=rules.train_eo.output.weights,
        config=rules.train_eo.output.config,
    output:
        lst=directory("results/eo/{area}/{eo_mode}/lst.zarr"),
    params:
        out_dir="results/eo/{area}/{eo_mode}",
        window=EO["window"],
        stride=EO["stride"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("predict_eo"),
        runtime=job_runtime_min("predict_eo", default_min=60),
    log:
        "logs/predict_eo/{area}/{eo_mode}.log",
    benchmark:
        "benchmarks/predict_eo/{area}/{eo_mode}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/predict_eo.py"


rule eo_modes_table:
    """The area's modes side by side: cost per mode and the WGAST metrics, baselines last."""
    input:
        pairs=wgast_store("pairs"),
        series=eo_series,
        summaries=eo_summaries,
    output:
        csv=report(
            "results/tables/eo-modes-{area}.csv",
            caption="../report/eo-modes.rst",
            category="LST",
            labels={"area": "{area}", "table": "Prithvi-EO modes"},
        ),
        md="results/tables/eo-modes-{area}.md",
    log:
        "logs/eo_modes_table/{area}.log",
    benchmark:
        "benchmarks/eo_modes_table/{area}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/eo_modes_table.py"
