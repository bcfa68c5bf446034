"""Connectivity probes before downloads: a TCP connection with a short timeout, so an offline
machine fails in seconds with one line instead of minutes of retries."""

from __future__ import annotations

import socket
from typing import Iterable, List
from urllib.parse import urlparse


def unreachable_hosts(urls: Iterable[str], timeout: float) -> List[str]:
    """The hosts of `urls` (each probed once) that do not answer within `timeout` seconds."""
    hosts = {}
    for url in urls:
        parsed = urlparse(url)
        if parsed.hostname:
            hosts[parsed.hostname] = parsed.port or (443 if parsed.scheme == "https" else 80)
    silent = []
    for host, port in sorted(hosts.items()):
        try:
            with socket.create_connection((host, port), timeout=timeout):
                pass
        except OSError:
            silent.append(host)
    return silent
