"""Building the ``ssl.SSLContext`` a client connects with."""

from __future__ import annotations

import ssl
from pathlib import Path


def tls_context(
    cafile: str | Path | None = None,
    certfile: str | Path | None = None,
    keyfile: str | Path | None = None,
    *,
    insecure: bool = False,
) -> ssl.SSLContext:
    """A client context that verifies the server: against ``cafile`` or the system's CAs.

    ``certfile`` / ``keyfile`` present a client certificate. ``insecure`` skips the
    check that the certificate names the host we connected to, as Mosquitto's
    ``--insecure`` does; the certificate chain is still verified. For no verification
    at all, build your own context (``verify_mode = ssl.CERT_NONE``) and pass it.
    """
    context = ssl.create_default_context(
        ssl.Purpose.SERVER_AUTH, cafile=None if cafile is None else str(cafile)
    )
    if certfile is not None:
        context.load_cert_chain(str(certfile), None if keyfile is None else str(keyfile))
    if insecure:
        context.check_hostname = False
    return context
