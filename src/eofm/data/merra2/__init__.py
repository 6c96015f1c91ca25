"""Being split into one module per route; for now the old module, renamed."""

from eofm.data.merra2.common import *  # noqa: F403
