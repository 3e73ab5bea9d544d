"""The plots of the experiments with pictures of their own (one module per experiment); the rest use
``engine.plots.default_plot``."""
