rule export:
    """Deliverables of one method x shard, every style: the photo's full resolution, its EXIF and
    ICC profile, the user's folder tree under results/export/<style>/<method>/."""
    input:
        shard=ingest_table("content", "{shard}"),
        source=export_source,
        segments=export_segment_index,
    output:
        index_path("export", "{method}", "{shard}"),
    params:
        settings=lambda wildcards: stage_settings("export", export_variant(wildcards.method)),
        code=stage_code("stages.export"),
        out_root=lambda wildcards, output: Path(output[0]).parents[2].as_posix(),  # results/export (lint: derived from the output)
    resources:
        gpu=1,
    threads: 2  # CPU threads for torch (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/export/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export/{{method}}/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} export --shard-table {input.shard:q} --source-index {input.source:q}"
        " --settings {params.settings:q} --out-root {params.out_root:q} --index {output:q}"
        " --code-version {params.code:q} --segment-index {input.segments:q} 2> {log:q}"
