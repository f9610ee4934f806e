"""The dmo dashboard: `dmo dashboard` runs this file with `streamlit run`.

Each page is also a script of its own (see ``pages/``); this file only puts
them in one app with a navigation bar. The store comes from ``$DMO_STORE_URL``.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).resolve().parent / "pages"

st.set_page_config(page_title="dmo", layout="wide")
st.navigation(
    [
        st.Page(PAGES / "searches.py", title="Searches", url_path="searches", default=True),
        st.Page(PAGES / "search.py", title="Search", url_path="search"),
        st.Page(PAGES / "experts.py", title="Experts", url_path="experts"),
    ]
).run()
