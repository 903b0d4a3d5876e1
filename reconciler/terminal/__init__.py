"""The terminal: the one channel to the user's screen. ``output`` writes every line through the
secret scrubber and gives logged warnings one format; ``progress`` draws the live progress
display. Only the commands and the CLI import this package (checked by ``make lint``)."""
