"""Tables owned by pipelines."""

import sqlalchemy as sa  # noqa: F401

from shipyard.store.db import metadata  # noqa: F401
