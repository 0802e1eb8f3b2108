"""What a run shows a person: table3 (the paper's layout), html_report and sections (the
work dir's report.html), charts (line charts). Reads results (plain dicts) and figure paths.
May import: core, the builders' protocol constants."""
