"""Measures of how good an explanation is (filled in as the metric modules land)."""
