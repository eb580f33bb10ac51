"""Training's one error type. The CLI prints it as one line (it is a ValueError);
progress goes to the standard `logging` loggers named after each module."""


class TrainingError(ValueError):
    """A problem with the training inputs or settings that the user can fix."""
