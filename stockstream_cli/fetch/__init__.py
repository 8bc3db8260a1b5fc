"""Pure fetching, no store: a batch's symbols and window in, rows, actions and outcomes out (batch.py), paced
(pacing.py), cut short by a deadline or a suspected block (deadline.py, block.py, cut_short.py), with the
refetch a split or dividend calls for (restate.py)."""
