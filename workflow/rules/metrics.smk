rule metrics:
    """Per-image metrics of one shard and style, for every method, raw and refined."""
    input:
        shard=ingest_table("content", "{shard}"),
        style=ingest_table("style", "{style}"),
        indexes=metrics_indexes,
    output:
        f"{RESULTS}/metrics/shards/{{style}}/{{shard}}.csv",
    params:
        settings=metrics_settings,
        code=stage_code_version("metrics"),
    log:
        f"{RESULTS}/logs/metrics/{{style}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/metrics/{{style}}/{{shard}}.tsv"
    shell:
        "photostyle metrics --shard-table {input.shard:q} --style-table {input.style:q}"
        " --style {wildcards.style} --settings {params.settings:q} --out {output:q}"
        " {input.indexes:q} 2> {log:q}"


rule aggregate_metrics:
    """Tidy per-image table and per method x style x variant summary (mean, median, p95)."""
    input:
        all_metric_tables,
    output:
        per_image=report(f"{RESULTS}/metrics/per_image.csv", caption="../report/per_image.rst", category="Metrics"),
        summary=report(f"{RESULTS}/metrics/summary.csv", caption="../report/summary.rst", category="Metrics"),
    log:
        f"{RESULTS}/logs/aggregate_metrics/aggregate.log",
    benchmark:
        f"{RESULTS}/benchmarks/aggregate_metrics/aggregate.tsv"
    shell:
        "photostyle aggregate --per-image {output.per_image:q} --summary {output.summary:q} {input:q} 2> {log:q}"
