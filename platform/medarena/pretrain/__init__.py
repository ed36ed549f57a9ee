"""Continual pretraining: recipes (pretrain/*.yaml); the DeepSpeed trainer builds on them."""
