"""What makes Dassl run our trainers and datasets: registration whichever of sar_prompt
and Dassl is imported first (registration.py), patches for current PyTorch (compat.py),
registering beside a host suite's own names (registry.py), the trainers' checkpoints and
exact resume (trainer_checkpoints.py, rng.py), reading reference implementations'
checkpoints (reference_state.py), and the results.json an evaluation writes
(results_json.py). Safe loading of torch files is sar_prompt.modeling.torch_load."""
