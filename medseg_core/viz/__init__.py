"""Pictures for notebooks and ``figures/``: :mod:`~medseg_core.viz.images` (overlays, frames, OCT views) and
:mod:`~medseg_core.viz.results` (curves, scores, ablation plots). Both are re-exported here, so
``from medseg_core.viz import overlay, plot_history`` works; saving figures with provenance is
:class:`medseg_core.provenance.FigureWriter`.
"""
from .images import *  # noqa: F401,F403
from .images import __all__ as _images
from .results import *  # noqa: F401,F403
from .results import __all__ as _results

__all__ = [*_images, *_results]
