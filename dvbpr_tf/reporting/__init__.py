"""What a run shows a person: the static `report.html` of a work dir and its charts.

Reads results (plain dicts) and figure paths; imports nothing of the models or the data.
"""
