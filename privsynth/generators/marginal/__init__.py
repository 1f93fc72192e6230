"""Marginal generators (MST, AIM): measure noisy marginals through :mod:`privsynth.mechanisms`,
estimate a graphical model from them (post-processing, :mod:`privsynth.inference`), sample."""
