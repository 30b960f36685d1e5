rule train_model:
    """One trained model that a selected method declares (photostyle.methods: Method.artifacts):
    a per-style network (trainer fast) or a decoder shared by all styles (trainer decoder).
    Checkpoints (beside the model, not an output) survive a killed job; the rerun resumes."""
    input:
        unpack(train_inputs),
    output:
        model=f"{TRAIN}/{{trainer}}/{{key}}/model.pt",
        losses=f"{TRAIN}/{{trainer}}/{{key}}/losses.csv",
    params:
        settings=train_settings,
        code=stage_code("stages.train"),
        root=TRAIN_ROOT,
        args=train_args,
    resources:
        gpu=TRAIN_GPU,
    threads: 2  # CPU threads for torch and the Numba kernels (capped at --cores); profiles override (set-threads)
    log:
        f"{RESULTS}/logs/train_model/{{trainer}}/{{key}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_model/{{trainer}}/{{key}}.tsv"
    conda:
        CONDA_ENV
    shell:
        "\"$PHOTOSTYLE_PYTHON\" -m photostyle --threads {threads} --gpu {resources.gpu} train --trainer {wildcards.trainer} --key {wildcards.key:q} {params.args}"
        " --listing {input.listing:q} --root {params.root:q} --settings {params.settings:q}"
        " --model {output.model:q} --losses {output.losses:q} --code-version {params.code:q} 2> {log:q}"
