"""Reports built from results (HTML), next to the charts; nothing in the analysis imports them."""
