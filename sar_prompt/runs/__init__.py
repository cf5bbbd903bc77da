"""Runs described and kept: the evaluation protocols and their folders, a run's identity
and fingerprint, who may write its folder, its result file and progress events."""
