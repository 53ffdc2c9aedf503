rule report:
    input:
        accuracy=paths.ACCURACY,
        effects=paths.EFFECTS,
        alignment=paths.ALIGNMENT,
        gains=paths.GAINS,
    output:
        summary=report(f"{paths.REPORT}/summary.md", caption="../report/summary.rst", category="Summary"),
        accuracy=report(f"{paths.REPORT}/accuracy.png", caption="../report/accuracy.rst", category="Accuracy"),
        parse_rate=report(f"{paths.REPORT}/parse_rate.png", caption="../report/parse_rate.rst", category="Accuracy"),
        gains=report(f"{paths.REPORT}/gains_by_group.png", caption="../report/gains.rst", category="Effects"),
        alignment=report(f"{paths.REPORT}/ft_vs_cot_gain.png", caption="../report/alignment.rst", category="Effects"),
    params:
        study=study_config(),
        out_dir=lambda wildcards, output: str(Path(output.summary).parent),
    conda:
        "../../envs/light.yaml"
    log:
        "logs/report.log",
    threads: 1
    resources:
        mem_mb=light_resource("mem_mb"),
        runtime=light_resource("runtime"),
    script:
        "../scripts/report.py"
