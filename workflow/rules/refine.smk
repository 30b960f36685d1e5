rule refine:
    """Smoothing, lift to the full-resolution photo, and domain-transform detail refinement of
    one shard, every method with refinement on (raw outputs are kept). A change of one method's
    refine settings reruns these jobs; they recompute that method's images and reuse the rest."""
    input:
        shard=ingest_table("content", "{shard}"),
        indexes=REFINE_SOURCES,
        segments=LIFT_SEGMENTS,
    output:
        shard_index("refined", "{shard}"),
    params:
        settings=stage_settings("refine", tuple(REFINED)),
        code=stage_code("stages.refine"),
    resources:
        gpu=REFINE_GPU,
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/refine/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/refine/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} --gpu {resources.gpu} refine --shard-table {input.shard:q} --stylize-indexes {input.indexes:q}"
        " --settings {params.settings:q} --index {output:q} --code-version {params.code:q}"
        " --segment-index {input.segments:q} 2> {log:q}"
