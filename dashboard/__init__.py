"""Embedscope's Streamlit dashboard: a thin layer over :mod:`core`."""
