rule export:
    """Deliverables of one shard, every method and style: the photo's full resolution, its EXIF and
    ICC profile, the user's folder tree under results/export/<style>/<method>/."""
    input:
        shard=ingest_table("content", "{shard}"),
        sources=EXPORT_SOURCES,
        segments=EXPORT_SEGMENTS,
        fits=EXPORT_LUT_FITS,
        raw=LUT_RAW_INDEXES,
    output:
        index=shard_index("export", "{shard}"),
        luts=LUT_OUTPUT,
    params:
        settings=stage_settings("export", tuple(EXPORT_VARIANTS.items())),
        code=stage_code("stages.export"),
    resources:
        gpu=EXPORT_GPU,
    threads: 2  # CPU threads for torch (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/export/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/export/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} --gpu {resources.gpu} export --shard-table {input.shard:q} --source-indexes {input.sources:q}"
        " --settings {params.settings:q} --index {output.index:q} --code-version {params.code:q}"
        " --segment-index {input.segments:q} --fits {input.fits:q} --raw-indexes {input.raw:q} --lut-index {output.luts:q}"
        " 2> {log:q}"
