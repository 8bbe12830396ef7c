"""Plots (matplotlib, Agg backend), one module per figure family: `lm` (training curves and
alphas), `kernel` (throughput), `stages` (ladders and tuning), `activation` (f and f') and
`history` (regress trends), on what `base` shares."""
