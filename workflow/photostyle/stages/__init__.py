"""stages: one module per Snakemake stage: its settings (the config keys that affect it) and its shard job on the engine; import methods, nets, ops and core."""
