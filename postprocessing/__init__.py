"""Network outputs -> instances (numpy, scipy, scikit-image, edt only).

Recipes (``recipes.apply_recipe``) turn channel-first probability maps into
uint32 instance labels; ``blockwise.apply_recipe_blockwise`` runs them on
chunked arrays larger than memory. Never imports torch, bioimageio or
synapse_bmz.
"""

from .active_zone import segment_active_zone
from .blockwise import apply_recipe_blockwise
from .clefts import segment_clefts
from .compartments import segment_compartments
from .mitochondria import segment_mitochondria
from .recipes import CHANNELS, RECIPES, apply_recipe
from .ribbon import segment_ribbon
from .vesicles import segment_vesicles

__all__ = [
    "RECIPES",
    "CHANNELS",
    "apply_recipe",
    "apply_recipe_blockwise",
    "segment_vesicles",
    "segment_mitochondria",
    "segment_active_zone",
    "segment_clefts",
    "segment_compartments",
    "segment_ribbon",
]
