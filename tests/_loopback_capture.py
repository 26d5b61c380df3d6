"""Captures the TCP payload of loopback packets to or from given addresses.

Usage: python3 _loopback_capture.py OUT HOST:PORT...  (needs CAP_NET_RAW)

Reads IPv4 packets on `lo` with an AF_PACKET socket (each packet once: the
outgoing copy is skipped) and appends, for each TCP segment with data whose source
or destination is one of the HOST:PORT pairs, a record to OUT: the pair's index
(u8), the direction (u8: 1 to the pair, 0 from it), the data length (u32, big
endian), then the data. Prints "ready" once capturing; stops on SIGTERM.
"""
import signal
import socket
import struct
import sys

out = open(sys.argv[1], "wb", buffering=0)
pairs = []
for arg in sys.argv[2:]:
    host, port = arg.rsplit(":", 1)
    pairs.append((socket.inet_aton(host), int(port)))

sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0800))
SO_RCVBUFFORCE = 33  # not in the socket module: linux/asm-generic/socket.h
sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 64 * 1024 * 1024)
sock.bind(("lo", 0))


class Stop(Exception):
    pass


def stop(*_):
    raise Stop()


signal.signal(signal.SIGTERM, stop)
print("ready", flush=True)
PACKET_OUTGOING = 4


def packets():
    try:
        while True:
            yield sock.recvfrom(262144)
    except Stop:
        pass
    # What the socket still holds, then the end.
    sock.setblocking(False)
    try:
        while True:
            yield sock.recvfrom(262144)
    except BlockingIOError:
        pass


for packet, addr in packets():
    if addr[2] == PACKET_OUTGOING:
        continue
    ip = packet[14:]
    if len(ip) < 20 or ip[9] != 6:
        continue
    ihl = (ip[0] & 0x0F) * 4
    total = struct.unpack("!H", ip[2:4])[0] or len(ip)
    src, dst = ip[12:16], ip[16:20]
    tcp = ip[ihl:total]
    sport, dport = struct.unpack("!HH", tcp[:4])
    data = tcp[(tcp[12] >> 4) * 4:]
    if not data:
        continue
    for index, (host, port) in enumerate(pairs):
        to = dst == host and dport == port
        if to or (src == host and sport == port):
            out.write(struct.pack("!BBI", index, 1 if to else 0, len(data)) + data)
            break
