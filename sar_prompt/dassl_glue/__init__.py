"""What makes Dassl run our trainers and datasets: patches for current PyTorch
(compat.py), registration beside a host suite's own names (registry.py), safe checkpoint
loading (checkpoints.py), the trainers' checkpoints and exact resume
(trainer_checkpoints.py, rng.py) and reading reference implementations' checkpoints
(reference_state.py)."""
