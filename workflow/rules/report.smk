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


rule report_shoot:
    """stylize.scope folder | collection: one folder before and after, each photo fitted alone
    (scope photo) beside one map for the folder (or collection), per colour-map method."""
    input:
        unpack(shoot_grid_inputs),
    output:
        report(f"{RESULTS}/report/shoot/{{style}}/{{unit}}.png", caption="../report/shoot.rst",
               category="Shoots", subcategory="{style}"),
    params:
        settings=stage_settings("report", "shoot"),
        folder=shoot_folder,
        code=stage_code("stages.report"),
    log:
        f"{RESULTS}/logs/report_shoot/{{style}}/{{unit}}.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle shoot-grid --style {wildcards.style} --folder={params.folder:q}"
        " --manifest {input.manifest:q} --style-table {input.style:q} --settings {params.settings:q} --out {output:q}"
        " --segment-indexes {input.segments:q} --indexes {input.indexes:q} 2> {log:q}"


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


rule report_tables:
    """The report's tables as HTML pages: the report shows HTML inside itself, while a CSV would
    only be offered as a data: link that browsers do not open. At most report.table_rows rows
    each; the CSVs keep every row."""
    input:
        rejected=f"{RESULTS}/rejected.csv",
        summary=f"{RESULTS}/metrics/summary.csv",
        per_image=f"{RESULTS}/metrics/per_image.csv",
        issues=f"{RESULTS}/metrics/issues.csv",
    output:
        summary=report(f"{RESULTS}/report/tables/summary.html", caption="../report/summary.rst", category="Tables"),
        issues=report(f"{RESULTS}/report/tables/issues.html", caption="../report/issues.rst", category="Tables"),
        per_image=report(f"{RESULTS}/report/tables/per_image.html", caption="../report/per_image.rst",
                         category="Tables"),
        rejected=report(f"{RESULTS}/report/tables/rejected.html", caption="../report/rejected.rst", category="Tables"),
    params:
        code=stage_code("stages.report"),
        rows=config["report"]["table_rows"],
    log:
        f"{RESULTS}/logs/report_tables/tables.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle tables --rows {params.rows}"
        " --csv {input.summary:q} {input.issues:q} {input.per_image:q} {input.rejected:q}"
        " --html {output.summary:q} {output.issues:q} {output.per_image:q} {output.rejected:q} 2> {log:q}"
