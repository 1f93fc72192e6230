"""DP-SGD generators (DPVAE, DPCTGAN): networks trained with DP-SGD on one-hot rows.

:mod:`.transform` (rows <-> one-hot blocks), :mod:`.privacy` (sample rate, steps and the one
sigma calibration; Opacus' accountant as a cross-check), :mod:`.train` (the training loop: the
one declared noise site outside :mod:`privsynth.mechanisms`), :mod:`.clipping` (per-row
clipping in one backward pass), :mod:`.base` (the family's fit flow), :mod:`.progress`,
:mod:`.networks`, :mod:`.marginal_targets` (DPCTGAN's noisy marginals), :mod:`.dpvae`,
:mod:`.dpctgan`.
"""
