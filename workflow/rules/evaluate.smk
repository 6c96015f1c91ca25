# Evaluation: every decoder against climatology and persistence on the held-out period.


rule evaluate_decoder:
    """Latitude-weighted RMSE and ACC on the test period, plus a truth/prediction/error map."""
    input:
        latents=latent_stores("{backbone}", TEST_MONTHS),
        stores=test_stores(),
        climatology="resources/stats/era5-climatology.zarr",
        weights="results/weather/{backbone}/decoder/{target}/model.safetensors",
        config="results/weather/{backbone}/decoder/{target}/config.json",
    output:
        metrics="results/metrics/weather/{backbone}/decoder/{target}.json",
        map=report(
            "results/figures/weather/{backbone}/decoder/{target}-map.png",
            caption="../report/map.rst",
            category="Maps",
            subcategory="{backbone}",
            labels={"model": "{backbone}", "target": "{target}"},
        ),
    params:
        model="{backbone}",
        target="{target}",
        start=PERIOD["test"]["start"],
        stop=PERIOD["test"]["stop"],
        step_hours=ERA5["step_hours"],
    log:
        "logs/evaluate_decoder/{backbone}/{target}.log",
    benchmark:
        "benchmarks/evaluate_decoder/{backbone}/{target}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/evaluate_decoder.py"


rule skill_table:
    """Decoder vs climatology vs persistence, per target: CSV, Markdown and a bar chart."""
    input:
        metrics=metrics_files(),
    output:
        csv=report(
            "results/tables/weather-skill.csv",
            caption="../report/skill.rst",
            category="Skill",
        ),
        markdown="results/tables/weather-skill.md",
        figure=report(
            "results/figures/weather-skill.png",
            caption="../report/skill.rst",
            category="Skill",
        ),
    log:
        "logs/skill_table/weather.log",
    benchmark:
        "benchmarks/skill_table/weather.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/make_skill_table.py"
