"""nft `jhash` (Linux lookup3 byte variant) and its bucket reduction, as the ALB namespace's
nft rule computes it (shared/research/semantics.md B3). Used to pick client addresses for a
scenario and to cross-check the bucket the kernel recorded in the ALB's conntrack mark.
`python3 jhash.py --selftest` checks the kernel-verified vectors."""

import ipaddress
import struct

M = 0xFFFFFFFF


def _rol(x: int, k: int) -> int:
    return ((x << k) | (x >> (32 - k))) & M


def jhash(key: bytes, seed: int) -> int:
    length = len(key)
    a = b = c = (0xDEADBEEF + length + seed) & M
    p = 0
    while length - p > 12:
        a = (a + struct.unpack_from("<I", key, p)[0]) & M
        b = (b + struct.unpack_from("<I", key, p + 4)[0]) & M
        c = (c + struct.unpack_from("<I", key, p + 8)[0]) & M
        a = (a - c) & M; a ^= _rol(c, 4); c = (c + b) & M
        b = (b - a) & M; b ^= _rol(a, 6); a = (a + c) & M
        c = (c - b) & M; c ^= _rol(b, 8); b = (b + a) & M
        a = (a - c) & M; a ^= _rol(c, 16); c = (c + b) & M
        b = (b - a) & M; b ^= _rol(a, 19); a = (a + c) & M
        c = (c - b) & M; c ^= _rol(b, 4); b = (b + a) & M
        p += 12
    r = length - p
    if r == 0:
        return c
    t = key[p:] + b"\0" * (12 - r)
    a = (a + struct.unpack_from("<I", t, 0)[0]) & M
    b = (b + struct.unpack_from("<I", t, 4)[0]) & M
    c = (c + struct.unpack_from("<I", t, 8)[0]) & M
    c ^= b; c = (c - _rol(b, 14)) & M
    a ^= c; a = (a - _rol(c, 11)) & M
    b ^= a; b = (b - _rol(a, 25)) & M
    c ^= b; c = (c - _rol(b, 16)) & M
    a ^= c; a = (a - _rol(c, 4)) & M
    b ^= a; b = (b - _rol(a, 14)) & M
    c ^= b; c = (c - _rol(b, 24)) & M
    return c


def bucket(h: int, mod: int) -> int:
    return (h * mod) >> 32


def key(mode: str, saddr: str, sport: int, daddr: str, dport: int) -> bytes:
    s = ipaddress.IPv4Address(saddr).packed
    d = ipaddress.IPv4Address(daddr).packed
    if mode == "default":  # ip saddr . tcp sport . ip daddr . tcp dport (each field padded to 4)
        return s + struct.pack(">H", sport) + b"\0\0" + d + struct.pack(">H", dport) + b"\0\0"
    if mode == "source-ip":  # ip saddr . ip daddr
        return s + d
    raise ValueError(mode)


def alb_bucket(mode: str, seed: int, n: int, saddr: str, sport: int, daddr: str, dport: int) -> int:
    return bucket(jhash(key(mode, saddr, sport, daddr, dport), seed), n)


def _selftest() -> None:
    k = bytes.fromhex("7f0000019c4000007f0000021f900000")
    assert jhash(k, 0x12345678) == 0x56B3EBB0
    assert alb_bucket("default", 0x12345678, 7, "127.0.0.1", 40000, "127.0.0.2", 8081) == 5
    assert alb_bucket("default", 0x12345678, 7, "127.0.0.1", 55555, "127.0.0.2", 8081) == 1
    assert jhash(bytes.fromhex("1f92"), 0) == 0xE5EB611B
    assert jhash(bytes.fromhex("7f000009"), 0xDEADBEEF) == 0xCA55410C
    print("jhash selftest ok")


if __name__ == "__main__":
    _selftest()
