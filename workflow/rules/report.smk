# Every plot and table is a report item of `snakemake --report`, with a caption in
# workflow/report/. Categories are numbered in the order a reader needs them (the
# report lists them alphabetically); "item" labels name the entries.
rule report:
    input:
        accuracy=paths.ACCURACY,
        effects=paths.EFFECTS,
        alignment=paths.ALIGNMENT,
        gains=paths.GAINS,
        notes=paths.NOTES,
        provenance=paths.PROVENANCE,
        proximity=paths.PROXIMITY,
    output:
        verdicts=report(
            f"{paths.REPORT}/{paths.REPORT_TABLES['verdicts']}",
            caption="../report/verdicts.rst",
            category="1. Verdicts",
            labels={"item": "verdict per model and prompt"},
        ),
        summary=report(
            f"{paths.REPORT}/{paths.REPORT_SUMMARY}",
            caption="../report/summary.rst",
            category="1. Verdicts",
            labels={"item": "summary.md (every table, to download)"},
        ),
        accuracy=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['accuracy']}",
            caption="../report/accuracy.rst",
            category="2. Accuracy",
            labels={"item": "accuracy heatmap"},
        ),
        parse_rate=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['parse_rate']}",
            caption="../report/parse_rate.rst",
            category="2. Accuracy",
            labels={"item": "parse-rate heatmap"},
        ),
        diagnostics=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['diagnostics']}",
            caption="../report/format_diagnostics.rst",
            category="2. Accuracy",
            labels={"item": "format diagnostics"},
        ),
        knowledge=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['knowledge']}",
            caption="../report/knowledge_readings.rst",
            category="2. Accuracy",
            labels={"item": "knowledge readings"},
        ),
        accuracy_table=report(
            f"{paths.REPORT}/{paths.REPORT_TABLES['accuracy']}",
            caption="../report/accuracy_table.rst",
            category="2. Accuracy",
            labels={"item": "table"},
        ),
        gains=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['gains']}",
            caption="../report/gains.rst",
            category="3. Gains by language group",
            labels={"item": "gains by group"},
        ),
        effects_table=report(
            f"{paths.REPORT}/{paths.REPORT_TABLES['effects']}",
            caption="../report/effects_table.rst",
            category="3. Gains by language group",
            labels={"item": "table"},
        ),
        alignment=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['alignment']}",
            caption="../report/alignment.rst",
            category="4. Fine-tuning and CoT gains",
            labels={"item": "fine-tuning gain against CoT gain"},
        ),
        proximity=report(
            f"{paths.REPORT}/{paths.REPORT_PLOTS['proximity']}",
            caption="../report/proximity.rst",
            category="3. Gains by language group",
            labels={"item": "gain against proximity"},
        ),
        alignment_table=report(
            f"{paths.REPORT}/{paths.REPORT_TABLES['alignment']}",
            caption="../report/alignment_table.rst",
            category="4. Fine-tuning and CoT gains",
            labels={"item": "table"},
        ),
    log:
        paths.LOGS["report"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("report"),
        code=stage_fingerprint("report"),
        xlt=xlt_launcher,
        out_dir=lambda wildcards, output: str(Path(output.summary).parent),
    shell:
        "{params.xlt} report --accuracy {input.accuracy:q} --effects {input.effects:q} --alignment {input.alignment:q}"
        " --gains {input.gains:q} --notes {input.notes:q} --provenance {input.provenance:q}"
        " --proximity {input.proximity:q} --settings {params.settings:q}"
        " --out {params.out_dir:q} --log {log:q}"


# What the numbers were computed from (models' and data's resolved revisions, versions,
# the config's hash). Local: resolving a Hub revision needs the network.
rule provenance:
    input:
        base=expand(paths.BASE_MODEL, model=MODELS),
        data=expand(paths.DATA, lang=LANGS),
        training=expand(paths.TRAINING, source=SOURCES),
        checks=paths.TRAINING_CHECKS,
    output:
        paths.PROVENANCE,
    log:
        paths.LOGS["provenance"],
    conda:
        "../../envs/light.yaml"
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    params:
        settings=job_settings("provenance"),
        code=stage_fingerprint("provenance"),
        xlt=xlt_launcher,
        # untracked, like xlt_launcher: where the checkout is changes no number
        checkout=lambda wildcards, resources: workflow.basedir,
    shell:
        "{params.xlt} provenance --settings {params.settings:q} --base {input.base:q}"
        " --training-checks {input.checks:q} --checkout {params.checkout:q}"
        " --out {output:q} --log {log:q}"
