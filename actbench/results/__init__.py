"""Results on disk: the append-only store a run writes (`store`), reading its records back
(`read`), through the one gate every read from a results folder passes (`gate`: regular files
inside the folder, no links, size caps), the environment fingerprint of a trial
(`fingerprint`), pandas tables of one or many results folders (`frames`), read through a columnar
index of each folder kept in the user's cache folder (`index`: Parquet, a cache of trials.jsonl).

Layout of a results folder (only the driver writes it):
    trials.jsonl            one JSON record (`actbench.core.record.Record`) per trial attempt, fsynced
    series/<trial_id>.json  large per-step series (loss curves, alpha traces, predictions)
    errors/<trial_id>.<attempt>.txt   tracebacks of failed attempts
    suites/<name>.yaml      the suite a run used (after --set), and `<name>.activations.json`: the
                            registry facts of its activations, so reading needs no plugin
    .actbench.lock          held (flock) by the run writing here: its pid, host and start time
"""

from actbench.results.frames import load, load_rows, series

__all__ = ["load", "load_rows", "series"]
