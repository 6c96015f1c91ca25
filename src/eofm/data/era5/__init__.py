"""Being split into one module per route; for now the old module, renamed."""

from eofm.data.era5.common import *  # noqa: F403
