"""Page scripts of the dashboard; each runs on its own under `streamlit run`."""
