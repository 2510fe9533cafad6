"""Run the gateway application under uvicorn in this process."""

from __future__ import annotations

import logging

import uvicorn

from bastion.http_protocol import CoalescingHttpToolsProtocol
from bastion.settings import Settings
from bastion.supervisor import check_port_free

__all__ = ["run_gateway"]

logger = logging.getLogger(__name__)


def run_gateway(settings: Settings, *, host: str, port: int) -> None:
    from gateway import create_app

    check_port_free(host, port, "gateway", "BASTION_PORT")
    config = uvicorn.Config(
        create_app(settings, freeze_startup_objects=True),  # this process runs only the gateway
        host=host,
        port=port,
        log_config=None,  # our logging is configured by the entry point
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
        # One write per answer, not head and body apart; a deadline for each request to arrive.
        http=CoalescingHttpToolsProtocol.reading_within(settings.request_read_timeout),
        # The client address audit and policy see: a listed proxy's X-Forwarded-For, else the peer.
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=settings.trusted_proxies or None,
    )
    uvicorn.Server(config).run()
