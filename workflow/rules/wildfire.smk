# Wildfire danger (LOAN on FireCube): samples, then the model's rules below.


rule cut_firecube_samples:
    """LOAN samples: one Zarr store per split (train, val, test-<year>) from the cube."""
    input:
        cube="resources/firecube/{source}/firecube.zarr",
    output:
        stores=[directory(f"resources/loan/{{source}}/samples/{split}.zarr") for split in LOAN_SPLITS],
    params:
        loan=LOAN_CUTTING,
    log:
        "logs/cut_firecube_samples/{source}.log",
    benchmark:
        "benchmarks/cut_firecube_samples/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/cut_firecube_samples.py"


# --- model, evaluation, danger maps

rule train_loan:
    """The LOAN CNN (`norm=loan`) or its plain batch-norm ablation (`norm=batchnorm`),
    selected on the validation loss."""
    input:
        stores=["resources/loan/{source}/samples/train.zarr", "resources/loan/{source}/samples/val.zarr"],
        pretrained=loan_pretrained,
    output:
        weights="resources/loan/{source}/models/{norm}/model.safetensors",
        config="resources/loan/{source}/models/{norm}/config.json",
        summary=report(
            "results/loan/{source}/train-{norm}.json",
            caption="../report/loan-train.rst",
            category="Wildfire",
        ),
    wildcard_constraints:
        norm="loan|batchnorm",
    params:
        loan=LOAN_TRAINING,
        checkpoint_dir="checkpoints/train_loan/{source}/{norm}",
    # One torch thread on a local CPU: the network's small convolutions gain little from
    # a second, and on cores that other jobs keep busy two threads ran an epoch 17x slower
    # (221 s against 13 s: a thread waits at every barrier). profiles/slurm sets its own.
    threads: 1
    resources:
        gpu=1,
        mem_mb=loan_training_memory_mb,
        runtime=job_runtime_min("train_loan", default_min=240),
    log:
        "logs/train_loan/{source}-{norm}.log",
    benchmark:
        "benchmarks/train_loan/{source}-{norm}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_loan.py"


rule train_rf_baseline:
    """The must-beat random forest on per-pixel features; writes its test scores."""
    input:
        train="resources/loan/{source}/samples/train.zarr",
        tests=lambda wildcards: list(loan_test_stores(wildcards).values()),
    output:
        scores="results/loan/{source}/scores-rf.csv",
    params:
        baseline=LOAN["baseline"],
        tests=loan_test_stores,
    threads: 1
    log:
        "logs/train_rf_baseline/{source}.log",
    benchmark:
        "benchmarks/train_rf_baseline/{source}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/train_rf_baseline.py"


rule evaluate_loan:
    """Per test year: LOAN, the batch-norm ablation and the random forest in one table,
    with ROC and precision-recall curves."""
    input:
        loan_weights="resources/loan/{source}/models/loan/model.safetensors",
        loan_config="resources/loan/{source}/models/loan/config.json",
        bn_weights="resources/loan/{source}/models/batchnorm/model.safetensors",
        bn_config="resources/loan/{source}/models/batchnorm/config.json",
        rf_scores=rules.train_rf_baseline.output.scores,
        tests=lambda wildcards: list(loan_test_stores(wildcards).values()),
    output:
        csv="results/tables/loan-{source}.csv",
        md=report(
            "results/tables/loan-{source}.md",
            caption="../report/loan-table.rst",
            category="Wildfire",
        ),
        metrics="results/loan/{source}/metrics.json",
        differences_csv="results/tables/loan-{source}-differences.csv",
        differences_md=report(
            "results/tables/loan-{source}-differences.md",
            caption="../report/loan-differences.rst",
            category="Wildfire",
        ),
        curves=report(
            directory("results/figures/loan-{source}"),
            patterns=["{name}.png"],
            caption="../report/loan-curves.rst",
            category="Wildfire",
        ),
    params:
        tests=loan_test_stores,
        bootstrap=LOAN["evaluate"],
    threads: 1  # as train_loan
    log:
        "logs/evaluate_loan/{source}.log",
    benchmark:
        "benchmarks/evaluate_loan/{source}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/evaluate_loan.py"


rule danger_map:
    """A day's wildfire danger over every land pixel of the cube (tiled inference):
    Cloud-Optimised GeoTIFF (EPSG:4326) and PNG."""
    input:
        weights="resources/loan/{source}/models/loan/model.safetensors",
        config="resources/loan/{source}/models/loan/config.json",
        train="resources/loan/{source}/samples/train.zarr",
        stores="resources/firecube/{source}/firecube.zarr",
    output:
        tif="results/loan/{source}/danger/{day}.tif",
        png=report(
            "results/figures/loan-{source}-danger-{day}.png",
            caption="../report/loan-danger.rst",
            category="Wildfire",
        ),
        summary="results/loan/{source}/danger/{day}.json",
    wildcard_constraints:
        day=r"\d{4}-\d{2}-\d{2}",
    params:
        settings=LOAN["danger_map"],
    threads: 1  # as train_loan
    resources:
        gpu=1,
        mem_mb=job_memory_mb("danger_map"),
        runtime=job_runtime_min("danger_map", default_min=120),
    log:
        "logs/danger_map/{source}-{day}.log",
    benchmark:
        "benchmarks/danger_map/{source}-{day}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/danger_map.py"
