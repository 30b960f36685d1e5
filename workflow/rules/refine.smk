rule refine:
    """Domain-transform detail refinement of one stylised shard (raw outputs are kept)."""
    input:
        shard=ingest_table("content", "{shard}"),
        index=index_path("stylized", "{style}", "{method}", "{shard}"),
    output:
        index_path("refined", "{style}", "{method}", "{shard}"),
    params:
        settings=refine_settings,
        code=stage_code_version("refine"),
        out_dir=f"{RESULTS}/refined/{{style}}/{{method}}",
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/refine/{{style}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/refine/{{style}}/{{method}}/{{shard}}.tsv"
    shell:
        "photostyle refine --shard-table {input.shard:q} --stylize-index {input.index:q}"
        " --settings {params.settings:q} --out-dir {params.out_dir:q} --index {output:q}"
        " --code-version {params.code:q} 2> {log:q}"
