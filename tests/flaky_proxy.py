#!/usr/bin/env python3
"""A TCP proxy that loses the reply to the first SUBMIT: it forwards every connection both ways,
frame by frame, and when the server answers the first SUBMIT it has seen, it closes that
connection instead of passing the answer on. So the job is accepted, and its client never hears
its id. Later replies and connections are forwarded untouched. It stops by itself after
--lifetime seconds.

It counts the SUBMITs it forwards (on every connection) into --count-file, so that a test can
check that the client sent its job again, and that the server still ran it once.
Used to test that a client resending a SUBMIT with the same idempotency key gets one job, not two.
"""
import argparse
import os
import selectors
import socket
import struct
import time

SUBMIT = 0
HEADER = 5  # u8 code, u32 body length (little-endian)


def whole_frames(buffer):
    """Splits the whole frames off the front of `buffer`: (frames, the rest)."""
    frames = []
    while len(buffer) >= HEADER:
        (length,) = struct.unpack_from("<I", buffer, 1)
        if len(buffer) < HEADER + length:
            break
        frames.append(buffer[:HEADER + length])
        buffer = buffer[HEADER + length:]
    return frames, buffer


def write_atomically(path, text):
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.rename(path + ".tmp", path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True, help="HOST:PORT of the server")
    parser.add_argument("--port-file", required=True, help="where to write the proxy's port")
    parser.add_argument("--count-file", required=True, help="where to write the SUBMITs forwarded")
    parser.add_argument("--lifetime", type=float, default=30)
    args = parser.parse_args()
    host, port = args.target.rsplit(":", 1)

    listener = socket.create_server(("127.0.0.1", 0))
    write_atomically(args.port_file, f"{listener.getsockname()[1]}\n")
    write_atomically(args.count_file, "0\n")

    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ, None)
    # Per socket: its peer, whether it is the server's side, and the bytes of a frame not yet whole.
    sides = {}
    # Per server socket: the opcodes of the requests it has not answered yet, oldest first.
    waiting = {}
    submits = 0
    dropped = False
    deadline = time.monotonic() + args.lifetime

    def close(sock):
        other = sides[sock]["peer"]
        for s in (sock, other):
            selector.unregister(s)
            waiting.pop(s, None)
            del sides[s]
            s.close()

    while time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.2):
            sock = key.fileobj
            if sock is listener:
                client, _ = listener.accept()
                server = socket.create_connection((host, int(port)))
                sides[client] = {"peer": server, "server": False, "pending": b""}
                sides[server] = {"peer": client, "server": True, "pending": b""}
                waiting[server] = []
                selector.register(client, selectors.EVENT_READ, None)
                selector.register(server, selectors.EVENT_READ, None)
                continue
            if sock not in sides:
                continue  # closed earlier in this round, with its peer
            side = sides[sock]
            data = sock.recv(65536)
            if not data:
                close(sock)
                continue
            frames, side["pending"] = whole_frames(side["pending"] + data)
            lose = False
            for frame in frames:
                if not side["server"]:
                    waiting[side["peer"]].append(frame[0])
                    if frame[0] == SUBMIT:
                        submits += 1
                        write_atomically(args.count_file, f"{submits}\n")
                elif waiting[sock].pop(0) == SUBMIT and not dropped:
                    dropped = lose = True  # the job was accepted; its id goes nowhere
                    break
                side["peer"].sendall(frame)
            if lose:
                close(sock)


if __name__ == "__main__":
    main()
