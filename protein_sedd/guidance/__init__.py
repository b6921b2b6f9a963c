"""Label-guided design: a guide p(y | x_t) trained on noised sequences steers the reverse process.

labels.py (reading labelled sequences), network.py (the guide's network), guide.py (a trained guide, its
files and log p(y | x_t)), training.py (training on the diffusion's forward process), reweighting.py (the
guided reverse rates and their Taylor approximation).
"""
