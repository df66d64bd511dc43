"""A server on a test's outside host (a network namespace of the test's own): answers any
HTTP GET with its own address, and logs the source and payload of every UDP datagram it
gets on the same port to a file, so that a test can tell which packets arrived.

    python3 outside_server.py ADDRESS PORT UDP_LOG
"""
import socket
import socketserver
import sys
import threading

address, port, udp_log = sys.argv[1], int(sys.argv[2]), sys.argv[3]


class Handler(socketserver.StreamRequestHandler):
    def handle(self):
        self.rfile.readline()
        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
            pass
        body = f"outside {address}\n".encode()
        self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)


def udp():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((address, port))
    while True:
        data, peer = s.recvfrom(2048)
        with open(udp_log, "a") as f:
            f.write(f"{peer[0]} {data.decode(errors='replace')}\n")


socketserver.ThreadingTCPServer.allow_reuse_address = True
server = socketserver.ThreadingTCPServer((address, port), Handler)
threading.Thread(target=udp, daemon=True).start()
server.serve_forever()
