"""Plotly figures from the frames of :mod:`dashboards.frames` (pure: DataFrame in, figure out)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from dashboards.frames import Fidelity, objective_columns, weight_column

_HEIGHT = 380
_SCALE = "Viridis"
_MUTED = "#8da0b3"
_ACCENT = "#d1495b"


def _layout(figure: go.Figure, title: str, **kwargs: object) -> go.Figure:
    figure.update_layout(
        title=title, height=_HEIGHT, margin={"l": 40, "r": 20, "t": 50, "b": 40}, **kwargs
    )
    return figure


def progress_chart(progress: pd.DataFrame) -> go.Figure:
    """Each complete trial's objective, and the best so far as a step line."""
    figure = go.Figure(
        [
            go.Scatter(
                x=progress["trial"],
                y=progress["objective"],
                mode="markers",
                name="trial",
                marker={"size": 8, "color": _MUTED},
            ),
            go.Scatter(
                x=progress["trial"],
                y=progress["best so far"],
                mode="lines",
                name="best so far",
                line={"shape": "hv", "width": 3, "color": _ACCENT},
            ),
        ]
    )
    return _layout(figure, "Best so far vs trial", xaxis_title="trial", yaxis_title="objective")


def mixtures_chart(
    trials: pd.DataFrame, domains: Sequence[str], value: str = "objective"
) -> go.Figure:
    """The mixtures tried, coloured by ``value``: a ternary plot for exactly three domains,
    parallel coordinates otherwise (a simplex of any size fits on parallel axes)."""
    text = [f"trial {n}" for n in trials["trial"]]
    marker = {
        "color": trials[value],
        "colorscale": _SCALE,
        "showscale": True,
        "colorbar": {"title": value},
    }
    if len(domains) == 3:
        a, b, c = (weight_column(d) for d in domains)
        figure = go.Figure(
            go.Scatterternary(
                a=trials[a],
                b=trials[b],
                c=trials[c],
                mode="markers",
                text=text,
                marker={**marker, "size": 9},
                hovertemplate="%{text}<br>" + value + " %{marker.color:.2f}",
            )
        )
        figure.update_layout(
            ternary={
                "aaxis": {"title": domains[0]},
                "baxis": {"title": domains[1]},
                "caxis": {"title": domains[2]},
            }
        )
        return _layout(figure, "Mixtures tried")
    dimensions = [
        {"label": d, "values": trials[weight_column(d)], "range": [0, 1]} for d in domains
    ]
    dimensions.append({"label": value, "values": trials[value]})
    figure = go.Figure(
        go.Parcoords(
            line={"color": trials[value], "colorscale": _SCALE, "showscale": True},
            dimensions=dimensions,
        )
    )
    return _layout(figure, "Mixtures tried (weights per domain)")


def fidelity_chart(result: Fidelity, benchmark: str) -> go.Figure:
    """Proxy score (x) against the mixture-trained model's score (y), one point per mixture."""
    rho = "undefined" if math.isnan(result.rho) else f"{result.rho:.2f}"
    figure = go.Figure(
        go.Scatter(
            x=result.points["proxy"],
            y=result.points["real"],
            mode="markers",
            text=result.points["mixture"],
            marker={"size": 11, "color": _ACCENT},
            hovertemplate="%{text}<br>proxy %{x:.2f}<br>real %{y:.2f}",
            name="mixture",
        )
    )
    return _layout(
        figure,
        f"Proxy vs real, {benchmark} (Spearman ρ = {rho})",
        xaxis_title="proxy score",
        yaxis_title="real score",
    )


def pareto_chart(pareto: pd.DataFrame, names: Sequence[str]) -> go.Figure:
    """The first two objectives of every complete trial, the non-dominated ones joined up."""
    x, y = objective_columns(names)[:2]
    front = pareto[pareto["on front"]].sort_values(x)
    rest = pareto[~pareto["on front"]]
    figure = go.Figure(
        [
            go.Scatter(
                x=rest[x],
                y=rest[y],
                mode="markers",
                name="dominated",
                marker={"color": _MUTED, "size": 7},
                text=[f"trial {n}" for n in rest["trial"]],
            ),
            go.Scatter(
                x=front[x],
                y=front[y],
                mode="markers+lines",
                name="Pareto front",
                marker={"size": 10, "color": _ACCENT},
                line={"shape": "hv", "color": _ACCENT},
                text=[f"trial {n}" for n in front["trial"]],
            ),
        ]
    )
    return _layout(
        figure, f"Pareto front ({names[0]}, {names[1]})", xaxis_title=names[0], yaxis_title=names[1]
    )


def loss_chart(curves: pd.DataFrame) -> go.Figure:
    figure = px.line(curves, x="step", y="loss", color="model")
    return _layout(figure, "Training loss")


def retention_chart(retention: pd.DataFrame) -> go.Figure:
    figure = px.line(retention, x="layer", y="retention", color="model", markers=True)
    figure.update_yaxes(range=[0, 1.05], tickformat=".0%")
    figure.update_xaxes(dtick=1)
    return _layout(figure, "Vision tokens kept per layer (MoD retention)")


def ratios_chart(ratios: pd.DataFrame) -> go.Figure:
    figure = px.bar(ratios, x="model", y="ratio", color="measure", barmode="group")
    figure.add_hline(y=1.0, line_dash="dash", annotation_text="dense")
    figure.update_yaxes(range=[0, 1.1], tickformat=".0%")
    return _layout(figure, "FLOPs and KV cache vs the dense model")
