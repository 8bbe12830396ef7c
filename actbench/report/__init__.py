"""Everything actbench prints or draws, one module per job: comparisons (`compare`, built from
`kernels`, `lm`, `verdicts`, `replay` and `scaling`, shown by `present` and `formats`), `regression`,
the report page (`html`), `plots`, and what the CLI prints about the registry, suites and plans
(`tables`). The library entry points are in `actbench.api`."""
