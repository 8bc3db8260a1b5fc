"""Reading the store back: DataAggregator, the newest-wins rule, the footer index, compaction, status."""
