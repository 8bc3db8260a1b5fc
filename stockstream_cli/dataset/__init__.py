"""The dataset: the store's layout, records, the one commit path, readers and SQL views (README, Code map)."""
