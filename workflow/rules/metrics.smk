rule metrics:
    """Per-image metrics of one shard: every style and method, raw and refined. (A change of
    any method or style reruns these anyway, so one job per shard keeps the DAG small.)"""
    input:
        shard=ingest_table("content", "{shard}"),
        styles=STYLE_SET,
        indexes=SHARD_OUTPUTS,
        segments=SHARD_SEGMENTS,
    output:
        f"{RESULTS}/metrics/shards/{{shard}}.csv",
    params:
        settings=stage_settings("metrics"),
        code=stage_code("stages.metrics"),
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/metrics/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} metrics --shard-table {input.shard:q} --out {output:q} --settings {params.settings:q}"
        " --style-tables {input.styles:q} --indexes {input.indexes:q} --segment-indexes {input.segments:q}"
        " 2> {log:q}"


rule aggregate_metrics:
    """Tidy per-image table and per method x style x variant summary (mean, median, p95)."""
    input:
        all_metric_tables,
    output:
        per_image=f"{RESULTS}/metrics/per_image.csv",  # in the report as HTML tables (rule report_tables)
        summary=f"{RESULTS}/metrics/summary.csv",
        issues=f"{RESULTS}/metrics/issues.csv",
    log:
        f"{RESULTS}/logs/aggregate_metrics/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_metrics/aggregate.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle aggregate --per-image {output.per_image:q} --summary {output.summary:q} --issues {output.issues:q} {input:q} 2> {log:q}"
