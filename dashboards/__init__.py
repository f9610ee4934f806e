"""Read-only Streamlit views of the dmo store: searches, one search, experts.

``frames`` shapes records into pandas DataFrames and ``charts`` turns those
into plotly figures (both pure, unit tested); ``view`` holds what the pages
share (the store from ``$DMO_STORE_URL``, the sidebar, the search picker);
``pages/`` are the Streamlit scripts and ``app.py`` puts them in one app.
The store is read only through :class:`storage.Store`.
"""

# How `dmo dashboard` hands the app its settings (kept here, so the CLI need not import streamlit).
STORE_URL_ENV = "DMO_STORE_URL"
OPTUNA_URL_ENV = "DMO_OPTUNA_DASHBOARD_URL"
