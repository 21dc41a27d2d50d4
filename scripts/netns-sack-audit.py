#!/usr/bin/env python3
"""Audit Linux -> Sluice loss recovery from two packet captures of one transfer.

  netns-sack-audit.py PEER_PCAP TAP_PCAP

PEER_PCAP is captured on the kernel peer's interface (before the lossy bridge),
TAP_PCAP on the TAP device (after it, what Sluice was handed). For every data
segment Linux sent more than once, the audit asks:

  * had the original already reached Sluice?  (then the retransmission was
    needless: "spurious")
  * had Sluice already processed it?  (some segment delivered after it was
    already acknowledged or SACKed by Sluice)
  * did any ACK Sluice sent before the retransmission cover it (cumulative
    ACK or a SACK block)?

A spurious retransmission of a segment Sluice had processed but never
reported means the SACK information Sluice sends is incomplete (RFC 2018 §4:
the first block must hold the most recently received segment, and each block
should be reported at least once). Needs tcpdump to read the captures.
"""
import re
import subprocess
import sys

LINE = re.compile(r"(\S+) IP (\S+) > (\S+): Flags \[(\S*)\], (.*)")


def load(path, peer_addr):
    text = subprocess.run(["tcpdump", "-r", path, "-n", "-S", "-tt"], capture_output=True, text=True, check=True).stdout
    rows = []
    for line in text.splitlines():
        m = LINE.match(line)
        if not m:
            continue
        rest = m.group(5)
        seq = re.search(r"seq (\d+):(\d+)", rest)
        ack = re.search(r"ack (\d+)", rest)
        sack = re.search(r"sack \d+ ((?:\{\d+:\d+\})+)", rest)
        rows.append({
            "t": float(m.group(1)),
            "from_linux": m.group(2).startswith(peer_addr + "."),
            "seq": (int(seq.group(1)), int(seq.group(2))) if seq else None,
            "ack": int(ack.group(1)) if ack else None,
            "sack": [(int(a), int(b)) for a, b in re.findall(r"\{(\d+):(\d+)\}", sack.group(1))] if sack else [],
        })
    return rows


def seq_le(a, b):
    """a <= b in 32-bit sequence space (RFC 9293 §3.4)."""
    return (b - a) % 2**32 < 2**31


def covers(ack_row, segment):
    start, end = segment
    if ack_row["ack"] is not None and seq_le(end, ack_row["ack"]):
        return True
    return any(seq_le(a, start) and seq_le(end, b) for a, b in ack_row["sack"])


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    peer_addr = "10.77.0.1"
    peer = load(sys.argv[1], peer_addr)
    tap = load(sys.argv[2], peer_addr)

    delivered = {}  # segment -> first time it reached the TAP
    for r in tap:
        if r["from_linux"] and r["seq"] and r["seq"][1] > r["seq"][0]:
            delivered.setdefault(r["seq"], r["t"])
    by_delivery = sorted((t, s) for s, t in delivered.items())
    sluice_acks = [r for r in tap if not r["from_linux"] and r["ack"] is not None]

    sent = set()
    retransmissions = spurious = processed_unreported = reported = 0
    examples = []
    for r in peer:
        seg = r["seq"]
        if not r["from_linux"] or not seg or seg[1] == seg[0]:
            continue
        if seg not in sent:
            sent.add(seg)
            continue
        retransmissions += 1
        arrived = delivered.get(seg)
        if arrived is None or arrived >= r["t"]:
            continue
        spurious += 1
        window = [a for a in sluice_acks if arrived <= a["t"] <= r["t"]]
        if any(covers(a, seg) for a in window):
            reported += 1
            continue
        later = [s for t, s in by_delivery if t > arrived][:256]
        proof = next((a for a in window if any(covers(a, s) for s in later)), None)
        if proof is not None:
            processed_unreported += 1
            if len(examples) < 3:
                examples.append((seg, arrived, r["t"], proof))

    print("Linux retransmissions:", retransmissions)
    print("  original had already reached Sluice (spurious):", spurious)
    print("    Sluice had reported it, ACK lost or late:", reported)
    print("    Sluice had processed it (a later segment was acknowledged) but never reported it:", processed_unreported)
    base = by_delivery[0][1][0] if by_delivery else 0
    rel = lambda x: (x - base) % 2**32
    for seg, arrived, retx, proof in examples:
        print("  e.g. %d:%d reached Sluice at %.6f, retransmitted at %.6f; Sluice's ACK at %.6f: ack %d sack %s" % (
            rel(seg[0]), rel(seg[1]), arrived, retx, proof["t"], rel(proof["ack"]),
            [(rel(a), rel(b)) for a, b in proof["sack"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
