"""The openings of notes.csv's reasons for a missing interval, written by the tables
(xlt.stats.notes, effects, proximity) and read back by the verdicts (xlt.verdict). This
module imports nothing, so the report reads them without the statistics' dependencies."""

NO_INTERVAL = "no interval: "
# why a resampled statistic has no interval because it never varies
SAME_VALUE = "every resample gives"
