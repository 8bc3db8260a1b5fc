"""The outside world stockstream reads from: the ASX list and Yahoo Finance (and the HTTP session to it)."""
