"""Reports built from results: HTML, JUnit XML and Markdown (they may import the chart builders)."""
