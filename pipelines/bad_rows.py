"""The error of a raw row that cannot become an example.

Raised by every step that reads a row (columns, split assignment, cell
parsing) and caught where the row is dead-lettered with the message as its
reason; the lowest pipeline floor, so that no step imports another for it.
"""


class BadRowError(ValueError):
    """A raw row that cannot be turned into an example; the message is the reason."""
