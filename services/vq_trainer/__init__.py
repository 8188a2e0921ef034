"""Fit a small VQ autoencoder to an image source, to serve as the discretizer Q."""
