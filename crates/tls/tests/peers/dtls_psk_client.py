"""python-mbedtls DTLS 1.2 PSK client, an independent peer for interop_mbedtls.rs.

Usage: dtls_psk_client.py HOST PORT IDENTITY KEY_HEX MESSAGE
Handshakes with TLS-PSK-WITH-AES-128-CCM-8, sends MESSAGE, prints "HANDSHAKE",
"RECV <reply>" for one reply datagram, then "DONE". Exits 1 on any error, 2 on timeout.
"""

import signal
import socket
import sys

from mbedtls.exceptions import TLSError
from mbedtls.tls import (
    ClientContext,
    DTLSConfiguration,
    DTLSVersion,
    WantReadError,
)


def main() -> int:
    host, port, identity, key_hex, message = sys.argv[1:6]
    signal.alarm(15)  # never hang, whatever the server does
    conf = DTLSConfiguration(
        pre_shared_key=(identity, bytes.fromhex(key_hex)),
        ciphers=["TLS-PSK-WITH-AES-128-CCM-8"],
        validate_certificates=False,
        lowest_supported_version=DTLSVersion.DTLSv1_2,
        highest_supported_version=DTLSVersion.DTLSv1_2,
        handshake_timeout_min=0.5,
        handshake_timeout_max=4.0,
    )
    ctx = ClientContext(conf)
    sock = ctx.wrap_socket(
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
        server_hostname="mef.example.com",
    )
    sock.settimeout(10)
    sock.connect((host, int(port)))
    sock.do_handshake()
    print("HANDSHAKE", flush=True)
    sock.send(message.encode())
    while True:
        try:
            reply = sock.recv(4096)
        except WantReadError:
            continue
        if reply:
            break
    print("RECV", reply.decode(), flush=True)
    sock.close()
    print("DONE", flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (TLSError, OSError) as e:
        print("ERROR", type(e).__name__, e, flush=True)
        sys.exit(1)
