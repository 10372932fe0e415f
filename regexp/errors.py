"""Errors a user can fix. The CLI prints them as one line and exits with code 2."""


class RegexpError(Exception):
    """A problem with the user's input (config, data, results folder): no traceback."""


class ConfigError(RegexpError):
    """A config file, or an override, that does not validate."""


class DataError(RegexpError):
    """A dataset that cannot be found, fetched or decoded."""


class ResultsError(RegexpError):
    """A results folder that cannot be written, or would be overwritten."""


class TrackingError(RegexpError):
    """An experiment tracker (MLflow) that failed or refused what was sent."""


class ModelError(RegexpError):
    """A model builder that cannot be imported or called, or builds a model that does not fit the data."""
