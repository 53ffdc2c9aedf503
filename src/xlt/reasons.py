"""The words of notes.csv that the report reads back: the openings of the reasons for a
missing interval, written by the tables (xlt.stats.notes, effects, proximity) and read by
the verdicts (xlt.verdict), and how a method names its resampled unit. This module
imports nothing and sits outside xlt.stats, so the report reads them without the statistics
(neither their dependencies nor their fingerprint)."""

NO_INTERVAL = "no interval: "
# the opening of the reason a proximity slope was not fitted (xlt.stats.proximity)
NO_SLOPE = "no slope: "
# how notes.csv's methods name what an interval resamples (xlt.stats.notes.unit_name follows)
BOOTSTRAP_OVER = "bootstrap over "
# why a resampled statistic has no interval because it never varies
SAME_VALUE = "every resample gives"
