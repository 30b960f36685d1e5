rule refine:
    """Smoothing, lift to the full-resolution photo, and domain-transform detail refinement of
    one method x shard (raw outputs are kept)."""
    input:
        shard=ingest_table("content", "{shard}"),
        index=index_path("stylized", "{method}", "{shard}"),
        segments=lift_segment_index,
    output:
        index_path("refined", "{method}", "{shard}"),
    params:
        settings=lambda wildcards: stage_settings("refine", wildcards.method),
        code=stage_code("stages.refine"),
        out_root=lambda wildcards, output: Path(output[0]).parents[2].as_posix(),  # results/refined (lint: derived from the output)
    resources:
        gpu=1,
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/refine/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/refine/{{method}}/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} refine --shard-table {input.shard:q} --stylize-index {input.index:q}"
        " --settings {params.settings:q} --out-root {params.out_root:q} --index {output:q}"
        " --code-version {params.code:q} --segment-index {input.segments:q} 2> {log:q}"
