"""Reports built from results (HTML, JUnit XML, Markdown), next to the charts: they may import the chart
builders; nothing in the analysis imports them."""
