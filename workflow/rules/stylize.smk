rule stylize:
    """One method x one shard, every style. Models load once per job; images whose provenance
    is current are reused, so adding a style computes only that style."""
    input:
        shard=ingest_table("content", "{shard}"),
        styles=STYLE_SET,
        segments=stylize_segment_indexes,
        models=stylize_models,
        fits=STYLIZE_FITS,
    output:
        index_path("stylized", "{method}", "{shard}"),
    params:
        settings=method_settings("stylize"),
        code=stylize_code,
        train_root=TRAIN,
    resources:
        gpu=stylize_gpu,
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/stylize/{{method}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/stylize/{{method}}/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} --gpu {resources.gpu} stylize --shard-table {input.shard:q} --style-tables {input.styles:q}"
        " --method {wildcards.method} --settings {params.settings:q}"
        " --index {output:q} --code-version {params.code:q} --segment-indexes {input.segments:q}"
        " --train-root {params.train_root:q} --fits {input.fits:q} 2> {log:q}"
