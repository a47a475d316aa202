"""python-mbedtls DTLS 1.2 PSK server, an independent peer for interop_mbedtls.rs.

Usage: dtls_psk_server.py PORT IDENTITY KEY_HEX
Binds 127.0.0.1:PORT and prints "LISTENING"; accepts one client, runs the cookie exchange
(HelloVerifyRequest) and the handshake with TLS-PSK-WITH-AES-128-CCM-8, prints
"HANDSHAKE", reads one datagram, prints "RECV <data>", answers "echo:<data>" and prints "DONE".
Exits 1 on any error; a 15 s alarm ends it in any case.
"""

import signal
import socket
import sys
from contextlib import suppress

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    DTLSConfiguration,
    DTLSVersion,
    HelloVerifyRequest,
    ServerContext,
    WantReadError,
)


def main() -> int:
    port, identity, key_hex = sys.argv[1:4]
    signal.alarm(15)
    conf = DTLSConfiguration(
        pre_shared_key_store={identity: bytes.fromhex(key_hex)},
        ciphers=["TLS-PSK-WITH-AES-128-CCM-8"],
        validate_certificates=False,
        lowest_supported_version=DTLSVersion.DTLSv1_2,
        highest_supported_version=DTLSVersion.DTLSv1_2,
        handshake_timeout_min=0.5,
        handshake_timeout_max=4.0,
    )
    ctx = ServerContext(conf)
    listener = ctx.wrap_socket(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(port)))
    print("LISTENING", flush=True)
    # First ClientHello: answered with a HelloVerifyRequest (cookie bound to the address).
    conn, addr = listener.accept()
    conn.setcookieparam(addr[0].encode("ascii"))
    with suppress(HelloVerifyRequest):
        conn.do_handshake()
    # Second ClientHello, echoing the cookie: the real handshake.
    conn, addr = conn.accept()
    conn.setcookieparam(addr[0].encode("ascii"))
    conn.settimeout(10)
    conn.do_handshake()
    print("HANDSHAKE", flush=True)
    while True:
        try:
            data = conn.recv(4096)
        except WantReadError:
            continue
        if data:
            break
    print("RECV", data.decode(), flush=True)
    conn.send(b"echo:" + data)
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TLSError, OSError) as e:
        print("ERROR", type(e).__name__, e, flush=True)
        sys.exit(1)
