"""The model card (Markdown) and its two small plots, written next to the points table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from assistant.scoring.evaluate import baseline_metrics, fit_baselines, scorecard_metrics
from assistant.scoring.fairness import FOUR_FIFTHS, MIN_GROUP, approval_by_group, decision_mix
from assistant.scoring.metrics import calibration_table
from assistant.scoring.train import TrainResult

CARD_NAME = "model_card.md"
SCORE_PLOT = "score_distribution.png"
CALIBRATION_PLOT = "calibration.png"


def build_report(result: TrainResult) -> dict[str, Any]:
    model, split, spec = result.model, result.split, result.model.spec
    fitted = fit_baselines(spec, split.train[spec.columns], split.y_train)
    test_pd = model.pd_of(model.score_frame(split.test))
    return {
        "held_out": {"scorecard": scorecard_metrics(model, split.test, split.y_test),
                     **baseline_metrics(spec, fitted, split.test[spec.columns], split.y_test)},
        "train": {"scorecard": scorecard_metrics(model, split.train, split.y_train)},
        "calibration": calibration_table(split.y_test, test_pd),
        "decision_mix_held_out": decision_mix(model, split.test),
        "fairness": approval_by_group(model, result.frame),
    }


def write_plots(result: TrainResult, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model, split = result.model, result.split
    scores = model.score_frame(split.test)
    fig, ax = plt.subplots(figsize=(5, 3), dpi=80)
    bins = np.linspace(scores.min(), scores.max(), 30)
    ax.hist(scores[split.y_test == 0], bins=bins, alpha=0.6, label="good")
    ax.hist(scores[split.y_test == 1], bins=bins, alpha=0.6, label="bad")
    for cut, name in ((model.decline_score, "decline below"), (model.approve_score, "approve from")):
        ax.axvline(cut, color="k", linestyle="--", linewidth=1)
        ax.text(cut, ax.get_ylim()[1] * 0.95, f" {name} {cut:.0f}", fontsize=7, va="top")
    ax.set_xlabel("score")
    ax.set_ylabel("applicants (held-out)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / SCORE_PLOT, metadata={"Software": None})
    plt.close(fig)

    table = calibration_table(split.y_test, model.pd_of(scores))
    fig, ax = plt.subplots(figsize=(3.6, 3.2), dpi=80)
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1)
    ax.plot([r["predicted"] for r in table], [r["observed"] for r in table], marker="o")
    ax.set_xlabel("predicted probability of default")
    ax.set_ylabel("observed bad rate")
    ax.set_title("calibration, held-out deciles", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / CALIBRATION_PLOT, metadata={"Software": None})
    plt.close(fig)


def render_card(result: TrainResult, report: dict[str, Any]) -> str:
    model, spec = result.model, result.model.spec
    info, cur = model.training, spec.currency
    held = report["held_out"]
    lines = [
        f"# Model card: {spec.title} scorecard",
        "",
        f"Version `{model.version}` (the hash of the points table). Reproduce with "
        f"`assistant scoring train --spec {spec.name} --out DIR` (seed {spec.seed}; same data, same file).",
        "",
        "## What it is for",
        "An indicative eligibility check inside the customer chat and for staff: the score, a decision "
        "(approve / refer / decline), up to four reasons in plain words, and what the customer could change. "
        "It is not a credit decision on an application; a full application and checks follow.",
        "",
        "## Data",
        f"- File `{info['data_file']}` (sha256 `{info['data_sha256'][:16]}...`), target `{spec.target}` "
        f"(bad = `{spec.bad_value}`).",
        f"- Split: {info['rows']} rows to fit, {info['test_rows']} held out (stratified, seed {spec.seed}, "
        f"{spec.test_size:.0%} held out). Every figure below is on the held-out rows unless it says otherwise.",
    ]
    if cur.data != cur.applicant:
        lines.append(
            f"- Amounts: the data is in {cur.data}, customers answer in {cur.applicant}. One fixed factor, "
            f"{cur.data_per_applicant_unit} {cur.data} per {cur.applicant}, maps every amount (loan amount, "
            f"savings bands) onto the data (so {cur.applicant} 20,000 is {cur.data} "
            f"{20000 * cur.data_per_applicant_unit:,.0f}). Income is not in the data: the chat asks for it only "
            f"for the policy rule (income > 0) and to cap the indicative limit at "
            f"{spec.policy.income_multiple:g} months of income.")
    lines += ["", "## Features", "",
              "| feature | applicant field | from | IV | bins | points (min-max) |", "|---|---|---|---|---|---|"]
    for v in model.variables:
        f = spec.feature(v.column)
        pts = [b.points for b in v.bins if b.row == "bin"]
        lines.append(f"| {v.column} | {f.name if f.source != 'derived' else '(derived)'} | {f.source} | {v.iv:.3f} "
                     f"| {len(pts)} | {min(pts):.1f}-{max(pts):.1f} |")
    dropped = [f.column for f in spec.features if f.column not in model.by_column]
    if dropped:
        lines += ["", f"Dropped for information value below {spec.binning.min_iv}: {', '.join(dropped)}."]
    lines += ["", "Profile fields the lender holds are optional in a request: an unknown one scores the "
              "neutral points of its `Missing` row (weight of evidence 0) and is named as a reason "
              "(\"we have no record of ...\")."]
    if spec.excluded:
        lines += ["", "## Not used, and why", ""] + [f"- `{k}`: {v}" for k, v in spec.excluded.items()]
    lines += ["", "## Age",
              "Age is not a scorecard feature: it is used only in the policy rule (the product's minimum and "
              "maximum age in `terms.yaml`) and in the fairness table below, so the score cannot penalise "
              "older applicants beyond what the other data says."]
    lines += ["", "## Scale and decisions",
              f"- {spec.scaling.points:g} points at {spec.scaling.odds:g}:1 good:bad odds, {spec.scaling.pdo:g} points "
              f"to double the odds (factor {model.factor:.3f}, offset {model.offset:.3f}); higher is better.",
              f"- Approve from {model.approve_score:.1f} (probability of default <= {spec.decision.approve_max_pd}); "
              f"decline below {model.decline_score:.1f} (>= {spec.decision.decline_min_pd}); refer in between.",
              f"- Held-out decision mix: {_mix(report['decision_mix_held_out'])}.",
              f"- Indicative APR band and limit: probability-of-default bands {spec.pricing.pd_bands} each take "
              "an equal slice of the product's APR range (best band lowest) and a share "
              f"{spec.pricing.limit_share} of its limit range, never outside the product's figures."]
    lines += ["", "## Performance (held-out)", "", "| model | AUC | Gini | KS |", "|---|---|---|---|"]
    for name, m in held.items():
        lines.append(f"| {name} | {m['auc']:.4f} | {m['gini']:.4f} | {m['ks']:.4f} |")
    train_auc = report["train"]["scorecard"]["auc"]
    lines += ["", f"Scorecard AUC on the rows it was fitted on: {train_auc:.4f}. The two comparison models "
              "are fitted on the same split and the same features (one-hot + standardised logistic regression; "
              "scikit-learn HistGradientBoosting)."]
    lines += ["", "## Score distribution", "", f"![score distribution]({SCORE_PLOT})",
              "", "## Calibration", "", f"![calibration]({CALIBRATION_PLOT})", "",
              "| predicted | observed | n |", "|---|---|---|"]
    lines += [f"| {r['predicted']:.3f} | {r['observed']:.3f} | {r['n']} |" for r in report["calibration"]]
    lines += ["", "## Fairness", "",
              f"Approval rate of the score's decision on all {len(result.frame)} rows (fitted and held-out), "
              f"by group. Disparate-impact ratio = lowest / highest approval rate among groups of at least "
              f"{MIN_GROUP}; the four-fifths rule asks for >= {FOUR_FIFTHS}."]
    if not report["fairness"]:
        lines += ["", "The data has no age or other protected attribute, so no group can be compared."]
    for group in report["fairness"]:
        verdict = "passes" if group["passes_four_fifths"] else "FAILS"
        lines += ["", f"### {group['name']} (`{group['column']}`): ratio {group['disparate_impact']} ({verdict})",
                  "", "| group | n | approve | decline |", "|---|---|---|---|"]
        lines += [f"| {r['group']} | {r['n']} | {r['approve_rate']:.1%} | {r['decline_rate']:.1%} |"
                  for r in group["rows"]]
    lines += ["", "## Limitations",
              "- Small, old data (see the data set's own notes); the score is indicative only.",
              "- A group's lower approval rate can come from features correlated with it; the ratio above is "
              "reported for review, not corrected automatically.",
              "- Watch drift with `assistant scoring monitor NEW.csv` (PSI per feature and for the score).", ""]
    return "\n".join(lines)


def _mix(mix: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.0%}" for k, v in mix.items())


def write_card(result: TrainResult, out: Path) -> dict[str, Any]:
    """Write scorecard.json/.csv, the model card and its plots; return the report."""
    out = Path(out)
    report = build_report(result)
    result.model.metrics = {"held_out": report["held_out"], "train": report["train"],
                            "decision_mix_held_out": report["decision_mix_held_out"],
                            "fairness": report["fairness"]}
    result.model.save(out)
    write_plots(result, out)
    (out / CARD_NAME).write_text(render_card(result, report), encoding="utf-8")
    return report
