"""The one exception type for user mistakes: the CLI prints its message as a single line and exits non-zero."""


class UserError(Exception):
    """A problem with the user's input (a file, a flag, a config value), not a bug in maskpurify.

    The message must name the offending file or option and the problem, in one line.
    """
