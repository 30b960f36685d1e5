rule grade_sample:
    """stylize.scope folder | collection: a deterministic pixel sample of each photo of one shard
    (with its labels where segmentation is on), so that folder fits read samples, not photos."""
    input:
        shard=ingest_table("content", "{shard}"),
        segments=GRADE_SAMPLE_SEGMENTS,
    output:
        grade_sample_path("{shard}"),
    params:
        settings=stage_settings("grade", "sample"),
        code=stage_code("stages.grade"),
    log:
        f"{RESULTS}/logs/grade/sample/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/grade/sample/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle grade-sample --shard-table {input.shard:q} --segment-index {input.segments:q}"
        " --settings {params.settings:q} --out {output:q} 2> {log:q}"


rule grade_fit:
    """One method's colour map for one style and each unit (a folder, or the collection) whose
    first shard is {shard}, fitted on the pooled samples of the unit's photos; the stylize jobs
    of the unit's shards apply it."""
    input:
        unpack(grade_fit_inputs),
    output:
        grade_fit_path("{method}", "{style}", "{shard}"),
    params:
        settings=grade_fit_settings,
        units=grade_fit_units,
        code=grade_fit_code,
    log:
        f"{RESULTS}/logs/grade/fit/{{method}}/{{style}}/{{shard}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/grade/fit/{{method}}/{{style}}/{{shard}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle grade-fit --samples {input.samples:q} --style-table {input.style:q}"
        " --segment-index {input.segments:q} --method {wildcards.method} --units {params.units}"
        " --settings {params.settings:q} --out {output:q} --code-version {params.code:q} 2> {log:q}"
