localrules:
    manifest,
    fetch_weights,
    aggregate_metrics,
    report_grid,
    report_plots,
    report_segmentation,
    report_losses,


rule fetch_weights:
    """Download and verify every registered pretrained weight file, on a machine with
    internet (a cluster's login node), so compute nodes can run offline."""
    output:
        f"{config['weights']['dir']}/SHA256SUMS",
    log:
        f"{RESULTS}/logs/fetch_weights/fetch.log",
    conda:
        CONDA_ENV
    shell:
        "{PHOTOSTYLE} fetch-weights --weights-dir {config[weights][dir]:q} all 2> {log:q}"
