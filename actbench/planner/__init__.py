"""The planner: given a suite and the records so far, which trials run next, and is the sweep done?

One mechanism, three policies, each deciding per point of the suite from the records alone:
`choice` (a value left `auto`, decided once by a helper trial), `tuning` (grid search with
optional successive halving, on tuning seeds and the tuning part of the validation data) and
`seeds` (the final seeds: all at once, or in rounds until each candidate's comparison with the
baseline is decided). `plan.plan` walks them in order and returns the first batch of trials that
is not settled yet, with everything decided so far; the runner only executes the batches it is
given, and compare and report replay the same decisions from the recorded results.
"""
