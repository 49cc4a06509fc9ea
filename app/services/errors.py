"""Errors a user can cause. Adapters turn them into a form error, an ephemeral
Slack reply or a JSON error; none of them is ever a 500."""

from __future__ import annotations


class ServiceError(Exception):
    code = "ServiceError"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PermissionDenied(ServiceError):
    code = "PermissionDenied"


class NotFound(ServiceError):
    code = "NotFound"


class Conflict(ServiceError):
    """The request is valid but the current state forbids it."""

    code = "Conflict"


class ValidationError(ServiceError):
    """One message per field; '' is for errors that belong to the whole form."""

    code = "InvalidParameter"

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" if k else v for k, v in errors.items()))
        self.errors = errors


def invalid(field: str, message: str) -> ValidationError:
    return ValidationError({field: message})
