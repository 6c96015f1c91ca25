# Evaluation: every decoder against climatology and persistence on the held-out period.


rule evaluate_decoder:
    """Latitude-weighted RMSE and ACC on the test period, plus a truth/prediction/error map."""
    input:
        latents=expand(rules.encode_latents.output.latents, month=MONTHS.test, allow_missing=True),
        qc=expand(rules.check_latents.output.report, month=MONTHS.test, allow_missing=True),
        stores=test_stores(),
        store_qc=store_qc(plan.evaluation_input_months(MONTHS)),
        climatology=rules.compute_stats.output.climatology,
        weights=rules.train_decoder.output.weights,
        config=rules.train_decoder.output.config,
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


rule evaluate_finetuned:
    """The lora/full model run on the test period: metrics and a map per target."""
    input:
        unpack(backbone_weights),
        stores=test_stores(),
        store_qc=store_qc(plan.evaluation_input_months(MONTHS)),
        static=ERA5_STATIC,
        climatology=rules.compute_stats.output.climatology,
        finetuned=rules.finetune_backbone.output.weights,
        finetuned_config=rules.finetune_backbone.output.config,
    output:
        metrics=expand("results/metrics/weather/{{backbone}}/{{mode}}/{target}.json", target=TARGETS),
        maps=report(
            expand("results/figures/weather/{{backbone}}/{{mode}}/{target}-map.png", target=TARGETS),
            caption="../report/map-finetuned.rst",
            category="Maps",
            subcategory="{backbone} {mode}",
        ),
    params:
        start=PERIOD["test"]["start"],
        stop=PERIOD["test"]["stop"],
        step_hours=ERA5["step_hours"],
    threads: 2
    resources:
        gpu=1,
        mem_mb=job_memory_mb("evaluate_finetuned", trains_weights=False),
        runtime=job_runtime_min("evaluate_finetuned", default_min=120),
    log:
        "logs/evaluate_finetuned/{backbone}/{mode}.log",
    benchmark:
        "benchmarks/evaluate_finetuned/{backbone}/{mode}.tsv"
    conda:
        "../../envs/torch.yaml"
    script:
        "../../scripts/evaluate_finetuned.py"


rule mode_table:
    """The paper-style table of one backbone: accuracy per target and cost per mode."""
    input:
        metrics=mode_table_metrics,
        training=mode_table_training,
    output:
        csv=report(
            "results/tables/weather-modes-{backbone}.csv",
            caption="../report/modes.rst",
            category="Skill",
            labels={"model": "{backbone}", "table": "modes"},
        ),
        markdown="results/tables/weather-modes-{backbone}.md",
    log:
        "logs/mode_table/{backbone}.log",
    benchmark:
        "benchmarks/mode_table/{backbone}.tsv"
    conda:
        "../../envs/data.yaml"
    script:
        "../../scripts/make_mode_table.py"


rule skill_table:
    """Decoder vs climatology vs persistence, per target: CSV, Markdown and a bar chart."""
    input:
        metrics=plan.metrics_files(WEATHER),
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
