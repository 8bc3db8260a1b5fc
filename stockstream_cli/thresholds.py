"""The thresholds the library enforces and the help texts quote, kept in a module with no imports so that
quoting them costs a command's start-up nothing."""

# the ASX list (sources/asx.py)
MIN_SHARE_OF_PREVIOUS = 97  # percent of the previous list's symbols a new list must keep
DEFAULT_SOURCE_FLOOR = 1500  # symbols the default ASX source must give when there is no previous list

# what check flags (quality/check.py)
BIG_MOVE = 0.5  # a close more than 50% away from the previous close
STALE_SESSIONS = 10  # this many sessions in a row with the same close and zero volume

# Yahoo's own errors (fetch/unit_errors.py, quality/reverify.py)
UNIT_ERROR_FACTOR = 100  # a day served in cents for dollars: every price this many times its neighbours'
UNIT_ERROR_TOLERANCE = 0.02  # relative: how far outside the neighbouring sessions' range the day / 100 may lie
REVERIFY_SESSIONS = 10  # sessions a suspicious (symbol, date) is fetched again while Yahoo's answer stays the same
