localrules:
    manifest,
    style_set,
    fetch_weights,
    aggregate_metrics,
    report_grid,
    report_plots,
    report_segmentation,
    report_losses,
    report_tables,


rule fetch_weights:
    """Download and verify every registered pretrained weight file, on a machine with
    internet (a cluster's login node), so compute nodes can run offline."""
    output:
        f"{config['weights']['dir']}/SHA256SUMS",
    params:
        weights_dir=job_function(lambda wildcards, output: Path(output[0]).parent.as_posix()),
    log:
        f"{RESULTS}/logs/fetch_weights/fetch.log",
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle fetch-weights --weights-dir {params.weights_dir:q} all 2> {log:q}"
