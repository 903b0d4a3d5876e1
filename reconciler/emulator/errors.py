"""Typed errors the emulator answers with: an HTTP status, an ``error_code`` and a message.

The backends raise these; the HTTP layer turns them into ``{"error_code", "message"}`` bodies.
The status for each code follows the Databricks platform mapping that the SDKs are generated
from (``databricks/sdk/errors/platform.py`` and databricks-sdk-go ``apierr/error_mapping.go``:
``INVALID_PARAMETER_VALUE`` is a ``BadRequest`` (400), ``RESOURCE_DOES_NOT_EXIST`` a
``NotFound`` (404), ``REQUEST_LIMIT_EXCEEDED`` a ``TooManyRequests`` (429)), except where the
real service is seen to answer otherwise: ``RESOURCE_ALREADY_EXISTS`` comes with **400**, not
the 409 of the generated mapping (Azure/azure-databricks-operator#91, databricks/databricks-cli
#340: "HTTP 400 ... RESOURCE_ALREADY_EXISTS ... Scope X already exists!"). The SDK picks the
exception class by ``error_code`` first, so a client branching on the code behaves the same
whatever the status.

Messages never contain a secret value: only scope, key and principal names.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

STATUS_BY_CODE: Mapping[str, int] = MappingProxyType(
    {
        "BAD_REQUEST": 400,
        "MALFORMED_REQUEST": 400,
        "INVALID_PARAMETER_VALUE": 400,
        # Secrets API reference, put: "Throws RESOURCE_LIMIT_EXCEEDED if maximum number of
        # secrets in scope is exceeded" -- a client error, not throttling, so 400.
        "RESOURCE_LIMIT_EXCEEDED": 400,
        "DIRECTORY_NOT_EMPTY": 400,
        "UNAUTHENTICATED": 401,
        "PERMISSION_DENIED": 403,
        "RESOURCE_DOES_NOT_EXIST": 404,
        "ENDPOINT_NOT_FOUND": 404,
        "RESOURCE_ALREADY_EXISTS": 400,
        "REQUEST_LIMIT_EXCEEDED": 429,
        "INTERNAL_ERROR": 500,
        "TEMPORARILY_UNAVAILABLE": 503,
    }
)


class ApiError(Exception):
    """A refusal the service would give. ``error_code`` is a string, except for the legacy
    auth-gateway answers, which carry the HTTP status as an integer (see ``invalid_token``)."""

    def __init__(
        self,
        error_code: str | int,
        message: str,
        *,
        status: int | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        self.message = message
        if status is None:
            status = STATUS_BY_CODE.get(str(error_code), 400)
        self.status = status
        self.headers: Mapping[str, str] = dict(headers or {})

    def body(self) -> dict[str, object]:
        return {"error_code": self.error_code, "message": self.message}


def invalid(message: str) -> ApiError:
    return ApiError("INVALID_PARAMETER_VALUE", message)


def malformed(message: str) -> ApiError:
    return ApiError("MALFORMED_REQUEST", message)


def bad_request(message: str) -> ApiError:
    return ApiError("BAD_REQUEST", message)


def not_found(message: str) -> ApiError:
    return ApiError("RESOURCE_DOES_NOT_EXIST", message)


def already_exists(message: str) -> ApiError:
    return ApiError("RESOURCE_ALREADY_EXISTS", message)


def denied(message: str) -> ApiError:
    return ApiError("PERMISSION_DENIED", message)


def limit_exceeded(message: str) -> ApiError:
    return ApiError("RESOURCE_LIMIT_EXCEEDED", message)


def endpoint_not_found(method: str, api_path: str) -> ApiError:
    # Observed answer of the real service for an unknown path *or* a known path with the wrong
    # verb: 404 {"error_code": "ENDPOINT_NOT_FOUND", "message": "No API found for 'POST
    # /lineage-tracking/table-lineage'"} -- the path is shown without the /api/2.x prefix.
    return ApiError("ENDPOINT_NOT_FOUND", f"No API found for '{method} {api_path}'")


def invalid_token() -> ApiError:
    # What the real gateway answers for an unknown or revoked PAT (databricks-sdk-go issue
    # #873, "403 Databricks cli"): HTTP 403, X-Databricks-Reason-Phrase "Invalid access
    # token.", body {"error_code": 403, "message": "Invalid access token."} -- the code is
    # the status as an integer. The Python SDK maps it by status to PermissionDenied.
    return ApiError(403, "Invalid access token.", status=403)


def missing_credentials() -> ApiError:
    # No Authorization header at all: 401, same legacy shape; the SDK maps status 401 to
    # Unauthenticated.
    return ApiError(
        401,
        "Credential was not sent or was of an unsupported type for this API.",
        status=401,
    )
