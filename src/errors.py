"""Errors the engine raises for problems a user can fix (bad input, missing weights)."""


class Struc2mapError(Exception):
    """Base class: the message is a complete sentence meant for the user."""


class InputError(Struc2mapError):
    """A structure, map or parameter that cannot be used."""


class WeightsError(Struc2mapError):
    """Generator weights that are missing, corrupt or incompatible."""


class Cancelled(Struc2mapError):
    """Long work stopped on the user's request."""
