"""The dataset: the store's layout, records, readers and SQL views."""
