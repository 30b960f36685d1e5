rule stylize:
    """One method x one shard, every style. Models load once per job; images whose provenance
    is current are reused, so adding a style computes only that style."""
    input:
        shard=ingest_table("content", "{shard}"),
        styles=style_tables,
        segments=stylize_segment_indexes,
        models=stylize_models,
    output:
        index_path("stylized", "{method}", "{shard}"),
    params:
        settings=stylize_settings,
        code=stylize_code,
        out_root=f"{RESULTS}/stylized",
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/stylize/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stylize/{{method}}/{{shard}}.tsv"
    shell:
        "photostyle stylize --shard-table {input.shard:q} --style-tables {input.styles:q}"
        " --method {wildcards.method} --settings {params.settings:q} --out-root {params.out_root:q}"
        " --index {output:q} --code-version {params.code:q} --segment-indexes {input.segments:q} 2> {log:q}"
