rule report_grid:
    """content | style | each method raw | refined, for a sample of the collection."""
    input:
        manifest=f"{RESULTS}/manifest.csv",
        style=ingest_table("style", "{style}"),
        indexes=grid_indexes,
    output:
        report(f"{RESULTS}/report/grid_{{style}}.png", caption="../report/grid.rst",
               category="Images", subcategory="{style}"),
    params:
        settings=stage_settings("report"),
        code=stage_code("stages.report"),
    log:
        f"{RESULTS}/logs/report_grid/{{style}}.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle grid --style {wildcards.style} --manifest {input.manifest:q} --style-table {input.style:q}"
        " --settings {params.settings:q} --out {output:q} {input.indexes:q} 2> {log:q}"


rule report_plots:
    """Structure vs colour distance per method; summed runtime per rule (benchmark files)."""
    input:
        per_image=f"{RESULTS}/metrics/per_image.csv",
    output:
        scatter=report(f"{RESULTS}/report/metrics_scatter.png", caption="../report/scatter.rst", category="Metrics"),
        runtimes=report(f"{RESULTS}/report/runtimes.png", caption="../report/runtimes.rst", category="Runtime"),
    params:
        code=stage_code("stages.report"),
        benchmarks=f"{RESULTS}/benchmarks",
    log:
        f"{RESULTS}/logs/report_plots/plots.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle plots --per-image {input.per_image:q} --scatter {output.scatter:q}"
        " --runtimes {output.runtimes:q} $(find {params.benchmarks:q} -name '*.tsv' | sort) 2> {log:q}"


rule report_losses:
    """Loss curves: training of per-style networks and decoders (per step), and the
    optimisation of the grid sample by optimising methods (per loss evaluation)."""
    input:
        indexes=loss_indexes,
        training=training_logs,
    output:
        report(f"{RESULTS}/report/losses.png", caption="../report/losses.rst", category="Metrics"),
    params:
        code=stage_code("stages.report"),
        photos=config["report"]["grid_photos"],
    log:
        f"{RESULTS}/logs/report_losses/losses.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle losses --out {output:q} --photos {params.photos} --indexes {input.indexes:q}"
        " --training-logs {input.training:q} 2> {log:q}"
