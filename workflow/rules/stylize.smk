rule stylize:
    """One method x one style x one shard; models and style statistics loaded once per job."""
    input:
        shard=ingest_table("content", "{shard}"),
        style=ingest_table("style", "{style}"),
    output:
        index_path("stylized", "{style}", "{method}", "{shard}"),
    params:
        settings=stylize_settings,
        code=stylize_code,
        out_dir=f"{RESULTS}/stylized/{{style}}/{{method}}",
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/stylize/{{style}}/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stylize/{{style}}/{{method}}/{{shard}}.tsv"
    shell:
        "photostyle stylize --shard-table {input.shard:q} --style-table {input.style:q}"
        " --style {wildcards.style} --method {wildcards.method} --settings {params.settings:q}"
        " --out-dir {params.out_dir:q} --index {output:q} --code-version {params.code:q} 2> {log:q}"
