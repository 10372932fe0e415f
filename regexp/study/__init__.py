"""Study: what a results root says, read from disk without TensorFlow.

Entries: `report.write_report(root)` (statistics, figures, report.md/report.html),
`plots.plot_results(root)` (curves and comparison charts), `export.collect_rows(root)` (one
row per run for a spreadsheet). Modules: `configs` (runs grouped by config, one table of
per-config numbers), `summary` (mean ± std: summary.csv), `stats` (intervals and tests:
stats.csv), `report_figures`, `plots`, `report`, `export`.
"""
