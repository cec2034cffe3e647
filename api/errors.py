"""API's error tree (drawn in ``api/__init__.py``)."""


class ApiError(Exception):
    """Root of the API package's errors."""


class TokenError(ApiError):
    """A QR token was refused; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int = 401) -> None:
        super().__init__(message)
        self.status = status
