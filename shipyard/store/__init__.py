"""The two stores every component reads: metadata (SQLAlchemy) and artifacts (fsspec)."""
