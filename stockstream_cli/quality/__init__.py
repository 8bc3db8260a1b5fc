"""What the store should hold and what looks wrong in it (check.py), and a symbol's chart (chart.py)."""
