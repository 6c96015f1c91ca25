"""Being split into one module per route; for now the old module, renamed."""

from eofm.data.tiles.common import *  # noqa: F403
