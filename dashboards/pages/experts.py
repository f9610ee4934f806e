"""Experts page: every trained model (base, experts, mixture models) with its training curve
and efficiency settings: MoD retention per layer, FLOPs and KV-cache ratios, schedule."""

from __future__ import annotations

import streamlit as st

from dashboards import charts, view
from dashboards import frames as fr
from storage import MODEL_KINDS


def main() -> None:
    view.setup_page("Experts")
    st.title("Experts")
    store = view.open_store()
    if store is None:
        return
    models = store.list_models()
    if not models:
        st.info("No models in this store yet. `dmo search run` trains the base and the experts.")
        return
    present = [k for k in MODEL_KINDS if any(m.kind == k for m in models)]
    kinds = st.multiselect("kinds", present, default=present, key="kinds")
    models = [m for m in models if m.kind in kinds]
    for model in models:
        if model.status == "failed":
            st.warning(
                f"Model {fr.model_label(model)} failed (attempt {model.attempts}): "
                f"{model.error or 'no error recorded'}"
            )
        elif model.status == "running":
            st.info(f"Model {fr.model_label(model)} is still training.")
    if not models:
        st.info("No model of the chosen kinds.")
        return

    st.subheader("Efficiency settings")
    st.dataframe(
        fr.models_frame(models),
        hide_index=True,
        column_config={
            "mean retention": st.column_config.NumberColumn(format="%.3f"),
            "FLOPs ratio": st.column_config.NumberColumn(format="percent"),
            "KV ratio": st.column_config.NumberColumn(format="percent"),
            "final loss": st.column_config.NumberColumn(format="%.3f"),
            "dev score": st.column_config.NumberColumn(format="%.2f"),
            "train s": st.column_config.NumberColumn(format="%.0f"),
        },
    )
    left, right = st.columns(2)
    retention = fr.retention_frame(models)
    if retention.empty:
        left.info("No per-layer retention recorded for these models.")
    else:
        left.plotly_chart(charts.retention_chart(retention), key="retention")
    ratios = fr.ratios_frame(models)
    if ratios.empty:
        right.info("No FLOPs or KV-cache ratios recorded for these models.")
    else:
        right.plotly_chart(charts.ratios_chart(ratios), key="ratios")

    st.subheader("Training curves")
    curves = fr.loss_curves_frame(models)
    without = sorted({fr.model_label(m) for m in models} - set(curves["model"]))
    if curves.empty:
        st.info("No loss curve recorded for these models.")
    else:
        st.plotly_chart(charts.loss_chart(curves), key="loss")
    if without and not curves.empty:
        st.caption(f"No loss curve for: {', '.join(without)}.")


main()
