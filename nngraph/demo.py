"""`nngraph demo`: the whole job on real data. Train a population of small networks on
scikit-learn's digits (architectures x seeds x initialisation scales), store every epoch
as a version, run the analyses, write the reports, and measure the paper's finding.

Each architecture is one model; its versions are tagged `s{seed}-x{scale}-e{epoch}` and
carry test_accuracy, test_loss, train_loss, seed and init_scale. A rerun skips versions
already stored, so an interrupted demo resumes without duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nngraph.errors import NNGraphError

INPUT_SHAPE = (1, 8, 8)


@dataclass
class Plan:
    out: Path
    architectures: tuple[str, ...] = ("mlp", "cnn")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    init_scales: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0)
    epochs: int = 12
    bin_width: float = 0.1
    force: bool = False
    progress: bool = True
    reports: tuple[str, ...] = ("learning-dynamics", "strength", "link-weights", "activations", "ensemble",
                                "centrality", "communities")
    written: list[Path] = field(default_factory=list)
    data: object = None  # pipeline.DataOptions: the inputs every epoch's NS and NA are measured on


def model_name(architecture: str) -> str:
    return f"digits-{architecture}"


def tag(seed: int, scale: float, epoch: int) -> str:
    return f"s{seed}-x{scale:g}-e{epoch:02d}"


def check_output(plan: Plan) -> None:
    if plan.out.exists() and (not plan.out.is_dir() or any(plan.out.iterdir())) and not plan.force:
        raise NNGraphError(f"{plan.out} already exists: pass --force to write the reports into it, "
                           "or choose another --out")


def run(store, plan: Plan, echo) -> dict:
    """Train, ingest, analyze, report; returns the finding's figures per architecture."""
    check_output(plan)
    _train_and_ingest(store, plan, echo)
    findings = {}
    for architecture in plan.architectures:
        model = model_name(architecture)
        _analyze(store, model, plan, echo)
        findings[model] = _reports(store, model, plan, echo)
    return findings


def _train_and_ingest(store, plan: Plan, echo) -> None:
    from tqdm import tqdm

    from nngraph import digits
    from nngraph.ingest import EpochRecorder

    data = digits.load()
    runs = [(a, s, x) for a in plan.architectures for s in plan.seeds for x in plan.init_scales]
    stored = skipped = 0
    with tqdm(total=len(runs) * (plan.epochs + 1), desc="train + ingest", unit=" epochs",
              disable=not plan.progress) as bar:
        for architecture, seed, scale in runs:
            # pixel links for the convs, so the analyses see the whole graph (the maps are 8x8)
            with EpochRecorder(model_name(architecture), store=store, input_shape=INPUT_SHAPE,
                               conv_edges="pixel", data=plan.data) as record:

                def snapshot(epoch, model, metrics):
                    nonlocal stored, skipped
                    result = record(model, version=tag(seed, scale, epoch), step=epoch,
                                    metrics={**metrics, "seed": seed, "init_scale": scale})
                    stored, skipped = stored + (result.status != "exists"), skipped + (result.status == "exists")
                    bar.set_postfix_str(f"{architecture} seed {seed} x{scale:g} acc {metrics['test_accuracy']:.2f}")
                    bar.update()

                digits.train(digits.build(architecture, scale, seed), data, plan.epochs, snapshot, seed=seed)
    echo(f"stored {stored} versions" + (f" ({skipped} were already stored: resumed)" if skipped else ""))


def _analyze(store, model: str, plan: Plan, echo) -> None:
    from nngraph.analysis.run import analyze, build_requests, choose_engine, select_versions

    versions = [v for v in select_versions(store, model, all_versions=True)
                if v["tag"].startswith(tuple(f"s{s}-x{x:g}-" for s in plan.seeds for x in plan.init_scales))]
    engine = choose_engine(store, "auto", echo)
    requests = build_requests("centrality", ("pagerank",)) + build_requests("communities", ("louvain",))
    analyze(store, versions, requests, engine, progress=plan.progress)


def _reports(store, model: str, plan: Plan, echo) -> dict:
    from nngraph.analysis import render, reports

    one_network = f"s{plan.seeds[0]}-x{plan.init_scales[len(plan.init_scales) // 2]:g}-e*"
    directory = plan.out / model
    finding = {}
    for name in plan.reports:
        if name == "activations" and plan.data is None:
            continue
        options = reports.Options(versions=one_network if name != "ensemble" else None,
                                  bin_width=plan.bin_width)
        built = reports.build(store, name, model, options)
        if name == "ensemble":
            finding = _finding(built)
            built.findings.append(f"population: {len(plan.seeds) * len(plan.init_scales)} networks, "
                                  f"{len(built.versions)} snapshots")
        plan.written += render.write(built, directory, "html")
    echo(f"{model}: reports in {directory}")
    return finding


def _finding(report) -> dict:
    """Per accuracy bin, the mean fluctuation per layer; the divergences between the lowest and
    highest bin for link weights and for strengths; whether the paper's pattern shows."""
    bins = report.tables["bins"]
    fluctuation = {label: {int(r.layer): round(float(r.mean_fluctuation), 4) for r in rows.itertuples()}
                   for label, rows in bins.groupby("bin", sort=False)}
    versions = {label: int(rows["versions"].iloc[0]) for label, rows in bins.groupby("bin", sort=False)}
    result = {"versions_per_bin": versions, "mean_fluctuation": fluctuation}
    if "mean_ns_std" in bins:  # measured on data: NS spread and NA zeros per bin, averaged over layers
        result["neurons"] = {label: {column: round(float(rows[f"mean_{column}"].mean()), 4)
                                     for column in ("ns_std", "na_mean", "na_zero_fraction")}
                             for label, rows in bins.groupby("bin", sort=False)}
    divergences = report.tables["divergences"]
    if len(divergences):
        order = list(dict.fromkeys(bins["bin"]))
        extreme = divergences[(divergences["bin_a"] == order[0]) & (divergences["bin_b"] == order[-1])]
        per_quantity = {q: {"jensen_shannon": round(float(r["jensen_shannon"].mean()), 4),
                            "sym_kl": round(float(r["sym_kl"].mean()), 4),
                            "wasserstein": round(float(r["wasserstein"].mean()), 4)}
                        for q, r in extreme.groupby("quantity")}
        result.update(lowest_bin=order[0], highest_bin=order[-1], divergence_lowest_vs_highest=per_quantity)
        if {"link weight", "strength"} <= set(per_quantity):
            low, high = fluctuation[order[0]], fluctuation[order[-1]]
            wider = np.mean([high[k] > low[k] for k in low if k in high])
            overlap = per_quantity["link weight"]["jensen_shannon"] < per_quantity["strength"]["jensen_shannon"]
            result["paper_pattern"] = bool(overlap and wider > 0.5)
            result["explanation"] = (
                f"link weights {'overlap more' if overlap else 'do not overlap more'} than strengths between the "
                f"lowest and highest accuracy bins (JS {per_quantity['link weight']['jensen_shannon']:.3f} vs "
                f"{per_quantity['strength']['jensen_shannon']:.3f}); the high-accuracy bin's fluctuation is larger "
                f"in {wider:.0%} of the layers")
    return result


def describe(model: str, finding: dict) -> str:
    """The figures the demo measured, as a few readable lines."""
    from nngraph.output import render

    rows = [{"test_accuracy bin": label, "versions": finding["versions_per_bin"][label],
             **{f"layer {k}": v for k, v in layers.items()}} for label, layers in finding["mean_fluctuation"].items()]
    lines = [f"{model}: mean layer fluctuation per test-accuracy bin", render(rows, "table")]
    if "neurons" in finding:
        lines.append(f"{model}: neurons strength (NS) and activation (NA) on the data, per test-accuracy bin "
                     "(mean over layers)")
        lines.append(render([{"test_accuracy bin": label, **values} for label, values in finding["neurons"].items()],
                            "table"))
    divergences = finding.get("divergence_lowest_vs_highest", {})
    for quantity, values in divergences.items():
        lines.append(f"{quantity} distributions, bin {finding['lowest_bin']} against {finding['highest_bin']}: "
                     f"Jensen-Shannon {values['jensen_shannon']:.3f}, symmetric KL {values['sym_kl']:.3f}, "
                     f"Wasserstein {values['wasserstein']:.3f}")
    if "paper_pattern" in finding:
        verdict = "shows" if finding["paper_pattern"] else "does not show"
        lines.append(f"the paper's finding {verdict} on these data: {finding['explanation']}")
    else:
        lines.append("one accuracy bin only: no comparison (train longer or use a smaller --bin-width)")
    return "\n".join(lines)
