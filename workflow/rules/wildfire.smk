# Wildfire danger (LOAN on FireCube): samples, then the model's rules below.


rule cut_firecube_samples:
    """LOAN samples: one Zarr store per split (train, val, test-<year>) from the cube."""
    input:
        cube="resources/firecube/{source}/firecube.zarr",
    output:
        stores=[directory(f"resources/loan/{{source}}/samples/{split}.zarr") for split in LOAN_SPLITS],
    params:
        loan=config["loan"],
    log:
        "logs/cut_firecube_samples/{source}.log",
    benchmark:
        "benchmarks/cut_firecube_samples/{source}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/cut_firecube_samples.py"
