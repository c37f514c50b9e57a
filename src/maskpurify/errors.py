"""The one exception type for user mistakes: the CLI prints its message as a single line and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a config value), not a bug in maskpurify.

    The message must name the offending file or option and the problem, in one line: line breaks (from a file
    name or a value quoted in the message) are escaped, so the CLI always prints exactly one line.
    """

    def __init__(self, message: object = "") -> None:
        super().__init__(str(message).replace("\r", "\\r").replace("\n", "\\n"))
