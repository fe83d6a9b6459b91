"""User-facing errors: one line that names the problem and the fix, never a traceback."""


class BnnError(Exception):
    """A mistake in the user's input (data, model, artifact, flags) with a one-line message."""


class ArtifactError(BnnError):
    """An artifact directory that is missing, corrupted or of a format this version cannot read."""
