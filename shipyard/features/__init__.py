"""Feature store: entities, sources, feature views and services; offline and online stores."""
