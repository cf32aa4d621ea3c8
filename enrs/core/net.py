"""Who is on the other end of a request: trusted reverse proxies, client IP, request id."""

import ipaddress
import uuid
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@lru_cache(maxsize=8)
def _networks(cidrs: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(c.strip(), strict=False) for c in cidrs if c.strip())


def trusted_proxy_networks() -> tuple[Network, ...]:
    return _networks(tuple(settings.TRUSTED_PROXY_CIDRS))


def is_trusted_proxy(address: str | None) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in trusted_proxy_networks())


def from_trusted_proxy(request: HttpRequest) -> bool:
    """True when the TCP peer is one of the configured reverse proxies (nginx)."""
    return is_trusted_proxy(request.META.get("REMOTE_ADDR"))


def client_ip(request: HttpRequest) -> str:
    """The client's address: the proxy's X-Real-IP / X-Forwarded-For only when the peer is trusted."""
    peer = request.META.get("REMOTE_ADDR", "")
    if is_trusted_proxy(peer):
        real = request.META.get("HTTP_X_REAL_IP", "").strip()
        if real:
            return real
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        # Walk from the right: the first address that is not one of our proxies is the client.
        for candidate in reversed(forwarded):
            if not is_trusted_proxy(candidate):
                return candidate
    return peer


def new_request_id() -> str:
    return uuid.uuid4().hex
