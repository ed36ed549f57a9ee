"""What continual pretraining and instruction tuning share: recipe settings, the run plan,
launchers, and the per-rank loop helpers (schedule, DeepSpeed config, checkpoints, metrics)."""
