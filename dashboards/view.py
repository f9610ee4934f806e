"""What the pages share: the store named by ``$DMO_STORE_URL``, the sidebar, the search picker.

Every page script runs on its own (``streamlit run dashboards/pages/search.py``,
``AppTest.from_file``) as well as inside ``app.py``, so each calls
:func:`open_store` itself. A store that is missing, empty or unreachable is a
message on the page, never a traceback.
"""

from __future__ import annotations

import os

import streamlit as st

from dashboards import OPTUNA_URL_ENV, STORE_URL_ENV
from dmo.errors import DmoError
from storage import MISSING_STORE_HINT, SearchRecord, Store, mask_url

SEARCH_PARAM = "search"  # ?search=ID picks the search on the search page
_SEARCH_KEY = "dmo_search_id"


def setup_page(title: str) -> None:
    st.set_page_config(page_title=f"dmo · {title}", layout="wide")


def store_url() -> str | None:
    """``$DMO_STORE_URL``, which `dmo dashboard` sets to the store it resolved."""
    return os.environ.get(STORE_URL_ENV)


@st.cache_resource(show_spinner=False)
def _connect(url: str) -> Store:
    # One engine per URL for the server's life; reads never create, migrate or lock.
    return Store.open_existing(url, retry_s=2.0)


def open_store() -> Store | None:
    """The store to read, or None after saying on the page why there is none."""
    url = store_url()
    if not url:
        st.info(f"No store given: start the dashboard with `dmo dashboard` ({MISSING_STORE_HINT}).")
        return None
    try:
        store = _connect(url)
    except DmoError as error:
        st.info(f"No store to show at `{mask_url(url)}`: {error.render()}")
        return None
    _sidebar(store)
    return store


def _sidebar(store: Store) -> None:
    st.sidebar.caption(f"Store: `{store.url_masked}`")
    optuna_url = os.environ.get(OPTUNA_URL_ENV)
    if optuna_url:
        st.sidebar.markdown(f"[Optuna studies in optuna-dashboard]({optuna_url})")
    else:
        st.sidebar.caption(
            "Optuna studies: start optuna-dashboard on this database with `dmo dashboard --optuna`."
        )


def search_label(search: SearchRecord) -> str:
    return f"{search.id} · {search.name} ({search.sampler}, {search.status})"


def _search_id(text: str | None) -> int | None:
    """``?search=`` as an id; anything else (``²``, ``abc``, ``-1``) as no choice."""
    if text is None or not text.strip().isascii() or not text.strip().isdecimal():
        return None
    return int(text)


def pick_search(searches: list[SearchRecord]) -> SearchRecord:
    """A selectbox of the searches, first set from ``?search=ID`` (default: the newest);
    the choice is written back to the URL so it can be shared or reloaded."""
    by_id = {s.id: s for s in searches}
    if st.session_state.get(_SEARCH_KEY) not in by_id:
        asked = st.query_params.get(SEARCH_PARAM)
        wanted = _search_id(asked)
        if asked is not None and wanted not in by_id:
            st.warning(f"No search with id {asked!r}; showing the newest.")
        st.session_state[_SEARCH_KEY] = wanted if wanted in by_id else searches[-1].id
    chosen = st.selectbox(
        "Search", list(by_id), key=_SEARCH_KEY, format_func=lambda i: search_label(by_id[i])
    )
    st.query_params[SEARCH_PARAM] = str(chosen)
    return by_id[chosen]
