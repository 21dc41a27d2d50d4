#!/usr/bin/env python3
"""A small echo server on plain kernel socket calls (one selectors loop),
with TCP_NODELAY on every accepted connection as RPC servers set it. The
benchmark report runs it on the kernel and under `sluice run`.

  echo-server.py PORT

Serves until SIGTERM. Standard library only.
"""
import selectors
import signal
import socket
import sys


def main():
    port = int(sys.argv[1])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    sel = selectors.DefaultSelector()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("0.0.0.0", port))
    listener.listen(1024)
    listener.setblocking(False)
    sel.register(listener, selectors.EVENT_READ)
    while True:
        for key, _ in sel.select():
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                sel.register(conn, selectors.EVENT_READ)
                continue
            conn = key.fileobj
            try:
                data = conn.recv(65536)
                if data:
                    # Replies are as small as requests: the send buffer takes them.
                    conn.sendall(data)
                    continue
            except ConnectionError:
                pass
            sel.unregister(conn)
            conn.close()


if __name__ == "__main__":
    main()
