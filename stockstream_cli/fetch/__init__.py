"""One batch: its pacing (pacing.py), its fetch, clean, merge and write (batch.py), its record (manifest.py)."""
