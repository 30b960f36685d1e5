rule train_fast:
    """The fast method's network for one style, trained on a fixed subset of the collection.
    Checkpoints (beside the model, not an output) survive a killed job; the rerun resumes."""
    input:
        style=ingest_table("style", "{style}"),
        listing=TRAIN_LISTING,
    output:
        model=f"{RESULTS}/train/fast/{{style}}/model.pt",
        losses=f"{RESULTS}/train/fast/{{style}}/losses.csv",
    params:
        settings=train_settings,
        code=stage_code_version("train"),
        root=TRAIN_ROOT,
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/train_fast/{{style}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_fast/{{style}}.tsv"
    shell:
        "photostyle train --style-table {input.style:q} --listing {input.listing:q} --root {params.root:q}"
        " --settings {params.settings:q} --model {output.model:q} --losses {output.losses:q}"
        " --code-version {params.code:q} 2> {log:q}"


rule train_decoder:
    """One decoder of the universal methods (wct, photowct, adain): trained once per family and
    encoder level, not per style; resumable like train_fast."""
    input:
        listing=TRAIN_LISTING,
    output:
        model=f"{RESULTS}/train/decoders/{{family}}/relu{{level}}_1/model.pt",
        losses=f"{RESULTS}/train/decoders/{{family}}/relu{{level}}_1/losses.csv",
    params:
        settings=train_decoder_settings,
        code=stage_code_version("train_decoder"),
        root=TRAIN_ROOT,
    resources:
        gpu=1,
    log:
        f"{RESULTS}/logs/train_decoder/{{family}}_{{level}}.log",
    benchmark:
        f"{RESULTS}/benchmarks/train_decoder/{{family}}_{{level}}.tsv"
    shell:
        "photostyle train-decoder --family {wildcards.family} --level {wildcards.level} --listing {input.listing:q}"
        " --root {params.root:q} --settings {params.settings:q} --model {output.model:q} --losses {output.losses:q}"
        " --code-version {params.code:q} 2> {log:q}"
