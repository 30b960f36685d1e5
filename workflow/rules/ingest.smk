rule ingest:
    """Validate the files of one shard listing: each one accepted or rejected with a reason."""
    input:
        listing=f"{LISTS}/{{kind}}/{{part}}.csv",
    output:
        f"{RESULTS}/ingest/{{kind}}/{{part}}.csv",
    params:
        settings=stage_settings("ingest"),
        root=ingest_root,
        code=stage_code("stages.ingest"),
    log:
        f"{RESULTS}/logs/ingest/{{kind}}/{{part}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/ingest/{{kind}}/{{part}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle ingest --listing {input.listing:q} --root {params.root:q} --kind {wildcards.kind}"
        " --shard {wildcards.part} --settings {params.settings:q} --out {output:q} 2> {log:q}"


rule manifest:
    """Every input path lands in exactly one of manifest.csv and rejected.csv."""
    input:
        all_ingest_tables,
    output:
        manifest=f"{RESULTS}/manifest.csv",
        rejected=f"{RESULTS}/rejected.csv",  # in the report as an HTML table (rule report_tables)
    log:
        f"{RESULTS}/logs/manifest/manifest.log",
    benchmark:
        f"{RESULTS}/benchmarks/manifest/manifest.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle manifest --manifest {output.manifest:q} --rejected {output.rejected:q} {input:q} 2> {log:q}"

