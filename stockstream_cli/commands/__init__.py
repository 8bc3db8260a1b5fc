"""One module per group of commands; each has `register(app)` and imports the library lazily."""

COMMAND_MODULES = ("symbols", "fetch_batch")
