"""Running trials: the driver (`driver`) runs the trials it is handed on an executor (`local`: in
this process; `ray`: Ray tasks, `train`: Ray Train jobs for trials on several workers), each trial
executed where it runs by `trial`, with live progress (`progress`)."""
