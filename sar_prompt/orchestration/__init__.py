"""Running benchmarks: the runner and its worker processes, Slurm, the benchmark command
line, sweeps, input checks before anything starts, and the offline demo."""
