"""The deploy's defaults, kept apart from aws/resources.py so that `stockstream deploy --help` can quote
them without importing the resource definitions."""

DEFAULT_ARCH = "arm64"  # cheaper than x86_64 for the same work; deploy uses the host's when it builds the image
DEFAULT_SCHEDULE = "cron(0 20 * * ? *)"  # 20:00 UTC: 06:00 AEST, 07:00 AEDT, after the ASX close data settles
DEFAULT_LOG_RETENTION_DAYS = 30
