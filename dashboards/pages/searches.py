"""Searches page: every search in the store with its trial counts and best score."""

from __future__ import annotations

import streamlit as st

from dashboards import view
from dashboards.frames import SearchOverview, searches_frame


def main() -> None:
    view.setup_page("Searches")
    st.title("Searches")
    store = view.open_store()
    if store is None:
        return
    searches = store.list_searches()
    if not searches:
        st.info("No searches in this store yet. Start one with `dmo search run CONFIG`.")
        return
    overviews = [
        SearchOverview(
            search=s,
            counts=store.trial_counts(s.id),
            best=next(iter(store.best_trials(s.id, top_k=1)), None),
        )
        for s in searches
    ]
    frame = searches_frame(overviews)
    frame.insert(1, "open", [f"search?{view.SEARCH_PARAM}={i}" for i in frame["id"]])
    st.dataframe(
        frame,
        hide_index=True,
        column_config={
            "open": st.column_config.LinkColumn("open", display_text="view"),
            "best": st.column_config.NumberColumn("best", format="%.2f"),
            "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
            "updated": st.column_config.DatetimeColumn("updated", format="YYYY-MM-DD HH:mm"),
        },
    )
    for item in overviews:
        search, failed = item.search, item.counts.get("fail", 0)
        if search.status == "running":
            st.info(
                f"Search {search.id} is still running "
                f"({sum(item.counts.values())} trials so far); reload to see new trials."
            )
        elif search.status in ("failed", "interrupted"):
            st.warning(f"Search {search.id} {search.status}: {search.error or 'no error recorded'}")
        if failed:
            st.warning(
                f"Search {search.id} has {failed} failed trial{'s' * (failed > 1)}; "
                "the search page lists their errors."
            )


main()
