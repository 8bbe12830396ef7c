"""The bottom layer: value types every room shares (resources, the trial contract, trial kinds, the record)."""
