"""The statistical comparison: fine-tuning and chain-of-thought gains by language
group, the relatedness difference in differences (with script and family separated),
per-language McNemar tests, and the across-model alignment of the two gains.

Items are parallel across languages (the same passage and question, translated), so
every model is an items x cells matrix of 0/1 correctness, cells being variant x
prompt x language. Several questions share a passage (Belebele's `link`; an item id is
`link#question_number`), so the passage is the unit of every resampling and test: one
bootstrap (whole passages resampled with all their questions and cells) and one set of
passage sign flips serve every effect and model, which keeps all comparisons paired.
Predictions whose item ids carry no passage key are treated as independent questions.
Accuracy-scale effects are weighted sums of cells; the headroom-normalised
gains are functions of the cell accuracies; both are evaluated on the same resamples.

The modules, each importing only those above it in this list (none imports this
package's face, which names nothing):
settings (StatsSettings) -> cells (the items x cells matrices and the comparisons between
cells) -> notes (notes.csv's rows and shared texts) -> effects (a row of effects.csv, the
accuracy-scale and normalised effects) -> relatedness (gains by group, the difference in
differences and what qualifies it) and knowledge (the knowledge/format parts, the
format-only control) -> alignment, gains -> compare (one source's comparison) ->
proximity (the proximity slopes) -> sources (the study: every source, their interaction).
The words of notes.csv that the report reads back are xlt.reasons, outside this package,
so that the report stage does not import it.
"""
