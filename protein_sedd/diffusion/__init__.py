"""The diffusion: noise schedules, transition graphs, score entropy, likelihood bound, samplers."""
