"""A study's report: ONE self-contained HTML file, to keep or share.

The study's summary, its optimisation history, learning curves (intermediate values),
hyperparameter importances, parallel coordinates and the best trial with its test-set
confusion matrix and per-class precision/recall (recorded by the final evaluation), then the
ensemble (members, weights, metrics next to the best trial) when there is one. The charts
are Optuna's own plotly figures; plotly.js is inlined once, so the file opens without network
(no CDN). ``tuner-service report ID --out report.html`` and ``GET /studies/{id}/report`` write
and serve the same page. Never imports TensorFlow.
"""

from __future__ import annotations

import html
import json
import logging
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

import optuna
from optuna.trial import TrialState

from .optuna_bridge import STUDY_ATTR_TEST_CLASSES, best_trials
from .service import Services

log = logging.getLogger(__name__)

#: Section ids of the report, in order (a test checks that each is there).
SECTIONS = (
    "summary",
    "history",
    "learning-curves",
    "importances",
    "parallel-coordinates",
    "best-trial",
    "ensemble",
)

#: Charts link to nothing outside the file (no plotly logo, no "edit in Chart Studio").
_PLOT_CONFIG = {"displaylogo": False, "showSendToCloud": False}

_STYLE = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:1100px;color:#222}
h1{margin-bottom:.2rem} h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0} td,th{border:1px solid #ddd;padding:.25rem .6rem;
text-align:left} th{background:#f5f5f5} .note{color:#666;font-style:italic}
"""


def build_report(services: Services, study_id: int) -> str:
    """The report of study ``study_id`` as an HTML document.

    Raises:
        NotFoundError: unknown study.
    """
    detail = services.study_detail(study_id)
    study = services.optuna_study(services.study_row(study_id))
    import plotly.offline

    sections = [
        _section("summary", "Summary", _summary(detail)),
        _section("history", "Optimisation history", _figure(_history_figure, study)),
        _section(
            "learning-curves",
            "Learning curves (intermediate value per epoch, or per fold for grid studies)",
            _figure(optuna.visualization.plot_intermediate_values, study),
        ),
        _section("importances", "Hyperparameter importances", _importances(study)),
        _section(
            "parallel-coordinates",
            "Parallel coordinates",
            _figure(optuna.visualization.plot_parallel_coordinate, study),
        ),
        _section("best-trial", "Best trial", _best(detail, study)),
        _section("ensemble", "Ensemble", _ensemble(detail)),
    ]
    title = f"Study {detail['id']}: {detail['name']}"
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{_e(title)}</title><link rel=\"icon\" href=\"data:,\"><style>{_STYLE}</style>"
        f"<script>{plotly.offline.get_plotlyjs()}</script></head><body>"
        f"<h1>{_e(title)}</h1><p class=\"note\">Report written {made}.</p>"
        + "".join(sections)
        + "</body></html>\n"
    )


def _e(value: Any) -> str:
    return html.escape(str(value))


def _section(anchor: str, heading: str, body: str) -> str:
    return f'<section id="{anchor}"><h2>{_e(heading)}</h2>{body}</section>'


def _table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{_e(k)}</th><td>{_e(v)}</td></tr>" for k, v in rows)
    return f"<table>{cells}</table>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _summary(d: dict[str, Any]) -> str:
    spec = d["spec"]
    counts = ", ".join(f"{k} {v}" for k, v in d["trial_counts"].items() if v)
    budget = d["budget"]
    rows: list[tuple[str, Any]] = [
        ("status", d["status"] + (f" ({d['status_reason']})" if d.get("status_reason") else "")),
        ("engine", json.dumps(spec.get("engine"), sort_keys=True)),
        ("dataset", json.dumps(spec.get("dataset"), sort_keys=True)),
        ("objective", json.dumps(spec.get("objective"), sort_keys=True)),
        ("directions", ", ".join(d["directions"])),
        ("trials", counts or "none"),
        ("budget", f"{budget['finished']} of {budget['n_trials']} finished"),
        ("total trial time", f"{d['total_trial_seconds']:.1f} s"),
        ("created", d["created_at"]),
        ("finished", d.get("finished_at") or "-"),
    ]
    return _table(rows)


def _figure(make: Callable[[optuna.Study], Any], study: optuna.Study) -> str:
    """One of Optuna's plotly figures as an HTML fragment (plotly.js is in the page's head),
    or a note saying why there is nothing to draw."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return _note("No completed trial yet.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna's ExperimentalWarning and the like
            fig = make(study)
    except (ValueError, RuntimeError) as exc:  # e.g. too few trials for the chart
        return _note(f"Not drawn: {exc}")
    if not fig.data:
        return _note("Nothing to draw (no such values were recorded).")
    return str(fig.to_html(full_html=False, include_plotlyjs=False, config=_PLOT_CONFIG))


def _history_figure(study: optuna.Study) -> Any:
    if len(study.directions) > 1:  # several objectives: the Pareto front instead
        return optuna.visualization.plot_pareto_front(study)
    return optuna.visualization.plot_optimization_history(study)


def _importance_evaluator() -> tuple[Any, str]:
    """fANOVA (Optuna's default) where scikit-learn is installed, else PED-ANOVA (none)."""
    try:
        import sklearn  # noqa: F401
    except ImportError:
        return optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    return optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"


def _importances(study: optuna.Study) -> str:
    evaluator, name = _importance_evaluator()
    target = None
    if len(study.directions) > 1:
        def target(t: optuna.trial.FrozenTrial) -> float:
            return float(t.values[0])

    def plot(s: optuna.Study) -> Any:
        return optuna.visualization.plot_param_importances(
            s, evaluator=evaluator, target=target
        )

    return _note(f"Evaluator: {name} (optuna.importance).") + _figure(plot, study)


def _best(detail: dict[str, Any], study: optuna.Study) -> str:
    best = best_trials(study)
    if not best:
        return _note("No trial has finished yet.")
    parts = []
    for t in best:
        rows: list[tuple[str, Any]] = [("trial", t.number), ("value(s)", t.values)]
        rows += [(f"param {k}", v) for k, v in sorted(t.params.items())]
        parts.append(_table(rows))
    ev = detail.get("evaluation") or {}
    if ev.get("test_metrics"):
        parts.append(f"<h3>Test split (trial {_e(ev['trial_number'])})</h3>")
        parts.append(_table(sorted(ev["test_metrics"].items())))
    elif ev:
        parts.append(_note(f"Final evaluation: {json.dumps(ev, sort_keys=True)}"))
    else:
        parts.append(_note(f"Final evaluation: {detail.get('evaluation_state') or 'none'}."))
    per_class = study.user_attrs.get(STUDY_ATTR_TEST_CLASSES)
    if per_class:
        parts.append(_per_class_table(per_class))
        parts.append(_confusion_figure(per_class))
    return "".join(parts)


def _ensemble(detail: dict[str, Any]) -> str:
    """Members, weights, method, and the ensemble's metrics next to the best single trial's
    on the validation and test splits (the final evaluation's ``ensemble`` record)."""
    record = (detail.get("evaluation") or {}).get("ensemble")
    if record is None:
        state = detail.get("evaluation_state") or "none"
        return _note(f"No ensemble (final evaluation: {state}).")
    if not record.get("members"):
        why = record.get("error") or record.get("skipped") or "no members"
        return _note(f"No ensemble: {why}.")
    weights = ", ".join(f"{w:.3f}" for w in record["weights"])
    parts = [_table([
        ("method", record.get("method")),
        ("members (trial numbers)", ", ".join(str(n) for n in record["members"])),
        ("weights", weights),
    ])]
    head = "<tr><th>split</th><th>metric</th><th>ensemble</th><th>best trial</th></tr>"
    rows = []
    for split in ("validation", "test"):
        m = record.get(split)
        if not m:
            continue
        for k in sorted(m["ensemble"]):
            best = m["best_trial"].get(k)
            rows.append(
                f"<tr><td>{split}</td><td>{_e(k)}</td><td>{m['ensemble'][k]:.4f}</td>"
                f"<td>{'-' if best is None else f'{best:.4f}'}</td></tr>"
            )
    best_no = record.get("best_trial_number")
    parts.append(f"<h3>Ensemble vs best trial ({_e(best_no)})</h3>"
                 f"<table id=\"ensemble-metrics\">{head}{''.join(rows)}</table>")
    return "".join(parts)


def _per_class_table(pc: dict[str, Any]) -> str:
    head = "<tr><th>class</th><th>precision</th><th>recall</th><th>f1</th><th>support</th></tr>"
    rows = "".join(
        f"<tr><td>{_e(c)}</td><td>{p:.3f}</td><td>{r:.3f}</td><td>{f:.3f}</td><td>{n}</td></tr>"
        for c, p, r, f, n in zip(
            pc["labels"], pc["precision"], pc["recall"], pc["f1"], pc["support"], strict=True
        )
    )
    return f"<h3>Per class (test split)</h3><table id=\"per-class\">{head}{rows}</table>"


def _confusion_figure(pc: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    labels = [str(c) for c in pc["labels"]]
    fig = go.Figure(
        go.Heatmap(
            z=pc["confusion_matrix"], x=labels, y=labels, colorscale="Blues",
            text=pc["confusion_matrix"], texttemplate="%{text}",
            hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>",
        )
    )
    fig.update_layout(
        title=f"Confusion matrix, trial {pc.get('trial_number')} on the test split",
        xaxis_title="predicted class", yaxis_title="true class", yaxis_autorange="reversed",
        width=520, height=480,
    )
    html_fig = str(
        fig.to_html(
            full_html=False, include_plotlyjs=False, div_id="confusion", config=_PLOT_CONFIG
        )
    )
    return "<h3>Confusion matrix</h3>" + html_fig
