"""Dependencies shared by the routers: the services container and the bearer-token check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from ..errors import AuthError
from ..service import Services

_bearer = HTTPBearer(auto_error=False)


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def _check(services: Services, creds: HTTPAuthorizationCredentials | None) -> None:
    token = services.settings.api_token
    if token is None:
        return
    given = creds.credentials if creds is not None else ""
    if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
        raise AuthError("a valid 'Authorization: Bearer <token>' header is required")


def require_write(
    services: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Mutating endpoints: the API token when one is configured."""
    _check(services, creds)


def require_read(
    services: ServicesDep,
    creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """Reads: open unless TUNER_PROTECT_READS is set with a token."""
    if services.settings.protect_reads:
        _check(services, creds)
