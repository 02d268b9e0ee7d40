"""The one exception type for mistakes a user can make; the CLI prints it as a single line."""


class UserError(Exception):
    """Bad input from the user (path, audio, manifest, config, option). Message is one line."""
