"""The command lines a person runs: `cnn-sweep` (jobs/sweep.py), `cnn-train` (jobs/train.py);
`cnn-report` is `python -m analysis`. Argument parsing and wiring only."""
