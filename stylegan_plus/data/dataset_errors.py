"""Errors raised by the dataset_tool library; `dataset_tool.py` turns them into click errors."""


class DatasetToolError(Exception):
    """A problem with the input or output of a conversion (reported, exit status 1)."""


class OptionError(DatasetToolError):
    """An invalid combination of options; `param` names the option (click usage error)."""

    def __init__(self, message, param=None):
        super().__init__(message)
        self.param = param


class BadImageError(DatasetToolError):
    """One input image cannot be read; `--skip-bad` skips it instead of aborting."""

    def __init__(self, name, reason):
        super().__init__(f'{name}: {reason}')
        self.name = name
        self.reason = reason
