"""The lecture: one module per claim of the slides, each defining ``EXPERIMENT`` (its variants, profiles,
claims, checks and tables), with its figure in ``figures/``. The engine (``engine/``) finds them here by
that name alone (``engine.registry``); adding an experiment is adding its file.
"""
