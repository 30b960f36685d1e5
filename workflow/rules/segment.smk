rule segment:
    """Semantic label maps of one content shard or one style photo; models load once per job."""
    input:
        ingest_table("{kind}", "{part}"),
    output:
        segment_index("{kind}", "{part}"),
    params:
        settings=stage_settings("segment"),
        code=stage_code("stages.segment"),
    resources:
        gpu=SEGMENT_GPU,
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/segment/{{kind}}/{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/segment/{{kind}}/{{part}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} --gpu {resources.gpu} segment --table {input:q} --kind {wildcards.kind} --settings {params.settings:q}"
        " --index {output:q} --code-version {params.code:q} 2> {log:q}"


rule report_segmentation:
    """Segmentation overlays of the report's sample photos and of every style."""
    input:
        manifest=f"{RESULTS}/manifest.csv",
        indexes=segmentation_sheet_indexes,
    output:
        report(f"{RESULTS}/report/segmentation.png", caption="../report/segmentation.rst", category="Segmentation"),
    params:
        settings=stage_settings("report"),
        code=stage_code("stages.report"),
    log:
        f"{RESULTS}/logs/report_segmentation/segmentation.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle segmentation-sheet --settings {params.settings:q} --out {output:q} {input.indexes:q} 2> {log:q}"



rule style_set:
    """Every style photo's ingest row (``ingest``) or label-map row (``segment``) in one file: the
    one style input of each per-shard job."""
    input:
        style_set_members,
    output:
        f"{RESULTS}/{{stage}}/style_set.csv",
    log:
        f"{RESULTS}/logs/style_set/{{stage}}.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle concat --out {output:q} {input:q} 2> {log:q}"
