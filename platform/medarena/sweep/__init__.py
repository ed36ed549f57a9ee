"""Evaluation sweeps (`medarena sweep`): variants x tasks x settings from one YAML file, each
cell exactly the evaluation `medarena eval` would do (same run key), run by local workers or a
SLURM job array into one database, each cell claimed so that it never runs twice."""
