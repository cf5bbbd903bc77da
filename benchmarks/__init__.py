"""sar-prompt's performance harness: `python -m benchmarks` from the repository root.

Not part of the installed package. Each section times what a user waits for (training
steps, evaluation, SAR's cost as its novel classes grow, the command-line tools' start-up)
or measures peak memory, side by side with the same computation done the way the CoOp
family's reference code does it. See benchmarks/README.md.
"""
