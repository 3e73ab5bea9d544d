"""The floor below every layer: the suite's two kinds of failure (``errors``), files that are never half-written
(``files``) and seeds mixed from integers (``seeds``). It imports nothing of the suite."""
