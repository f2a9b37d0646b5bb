#!/usr/bin/env python3
"""A TCP proxy that loses the first reply: it forwards the first connection's requests to the
server, then closes that connection as soon as the server answers, without passing the answer
on. Later connections are forwarded untouched. It stops by itself after --lifetime seconds.

Used to test that a client resending a SUBMIT with the same idempotency key gets one job, not two.
"""
import argparse
import selectors
import socket
import time


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--port-file", required=True, help="where to write the proxy's port")
    parser.add_argument("--lifetime", type=float, default=30)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)

    listener = socket.create_server(("127.0.0.1", 0))
    with open(args.port_file + ".tmp", "w") as f:
        f.write(f"{listener.getsockname()[1]}\n")
    import os
    os.rename(args.port_file + ".tmp", args.port_file)

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    peers = {}  # socket -> (its peer, whether to drop what comes from this side)
    connections = 0
    deadline = time.monotonic() + args.lifetime
    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            if sock is listener:
                client, _ = listener.accept()
                server = socket.create_connection((host, int(port)))
                connections += 1
                drop = connections == 1  # only the first connection loses its reply
                peers[client] = (server, False)
                peers[server] = (client, drop)
                selector.register(client, selectors.EVENT_READ, None)
                selector.register(server, selectors.EVENT_READ, None)
                continue
            other, drop = peers[sock]
            data = sock.recv(65536)
            if data and not drop:
                other.sendall(data)
                continue
            # End of one side, or the reply to lose: close both sides.
            for s in (sock, other):
                selector.unregister(s)
                del peers[s]
                s.close()


if __name__ == "__main__":
    main()
