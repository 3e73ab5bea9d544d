"""An ensemble's member networks, held as one module."""

from __future__ import annotations

import torch.nn as nn


class Members(nn.ModuleList):
    """The member networks; ``after_step`` forwards to each (e.g. the MLP's max-norm projection)."""

    def after_step(self) -> None:
        for net in self:
            step = getattr(net, "after_step", None)
            if step is not None:
                step()
