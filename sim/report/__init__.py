"""Reports: the roofline chart (PNG) and the self-contained HTML report."""
