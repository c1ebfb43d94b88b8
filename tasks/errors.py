"""Failures a user can fix (bad input, failed checks): reported in one line, without a traceback."""


class RecsError(Exception):
    """An expected failure whose message says what is wrong."""


class InputError(RecsError, ValueError):
    """The source cannot be read as any supported format, or holds too little to work with."""


class StageFailed(Exception):
    """A stage of the flow failed; the message names the stage and the cause."""

    def __init__(self, stage: str, cause: BaseException) -> None:
        super().__init__(f"{stage} failed: {cause}")
        self.stage = stage
        self.expected = isinstance(cause, RecsError)


def is_expected(error: BaseException | None) -> bool:
    """True for failures the user can fix from the message alone."""
    return isinstance(error, RecsError) or (isinstance(error, StageFailed) and error.expected)
