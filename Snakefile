# photostyle: photographic style transfer for large photo collections.
# Stages: ingest -> segment -> train -> stylize -> refine (lift to full resolution) -> export,
# metrics -> report (see README.md).


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/ingest.smk"
include: "workflow/rules/segment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/grade.smk"
include: "workflow/rules/stylize.smk"
include: "workflow/rules/refine.smk"
include: "workflow/rules/export.smk"
include: "workflow/rules/metrics.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/weights.smk"


gc.freeze()  # every rule and listing is made: later full collections skip them (see common.smk)


rule all:
    input:
        final_targets(),
    default_target: True


onsuccess:
    # one line at the end of every run that produced the metrics: ok / with warnings / failed / skipped
    if Path(f"{RESULTS}/metrics/per_image.csv").exists():
        print(metrics_stage.run_summary(f"{RESULTS}/metrics/per_image.csv", f"{RESULTS}/metrics/issues.csv"))
