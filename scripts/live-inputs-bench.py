#!/usr/bin/env python3
"""What live inputs cost the content server: N live channels fed over UDP on loopback with the
test fixtures at their own bit rate (7 packets per datagram, as encoders send), the server's
CPU and resident memory measured from /proc, first with the inputs silent (every channel airs
the slate), then fed. The server's log must say "live input ok" for every channel.

Usage: scripts/live-inputs-bench.py [--channels 20] [--seconds 30]
       [--binary target/release/content-server]
"""
import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "media-fixtures")
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def send(ports, stop):
    """Every port gets a fixture at its real rate (24 s of video per file), looped."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    files = [open(os.path.join(FIXTURES, f"ch{i}.ts"), "rb").read() for i in range(1, 5)]
    streams = []
    for n, port in enumerate(ports):
        ts = files[n % len(files)]
        grams = [ts[i:i + 1316] for i in range(0, len(ts), 1316)]
        streams.append((port, grams, 24.0 / len(grams)))
    start = time.monotonic()
    sent = [0] * len(streams)
    total = 0
    while not stop.is_set():
        now = time.monotonic() - start
        for i, (port, grams, every) in enumerate(streams):
            while sent[i] * every <= now:
                sock.sendto(grams[sent[i] % len(grams)], ("127.0.0.1", port))
                total += len(grams[sent[i] % len(grams)])
                sent[i] += 1
        time.sleep(0.002)
    send.total = total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--channels", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--binary", default=os.path.join(ROOT, "target/release/content-server"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="live-bench-")
    base = 41000
    ports = [base + i for i in range(args.channels)]
    manifest = os.path.join(work, "channels.toml")
    with open(manifest, "w") as f:
        f.write(f'slate = "{os.path.join(FIXTURES, "slate.ts")}"\n')
        for i, port in enumerate(ports):
            f.write(f'\n[[channel]]\nnumber = {i + 1}\nname = "Live {i + 1}"\n'
                    f'input = "udp://127.0.0.1:{port}"\npackages = ["basic"]\n')
    common = [args.binary, "--data-dir", os.path.join(work, "data"), "--channels", manifest]
    subprocess.run(common + ["init"], check=True, stdout=subprocess.DEVNULL)
    log = open(os.path.join(work, "server.log"), "w+")
    server = subprocess.Popen(
        common + ["serve", "--listen", "127.0.0.1:0", "--enroll-listen", "127.0.0.1:0"],
        stderr=log, stdout=log, env={**os.environ, "RUST_LOG": "info"})
    try:
        time.sleep(3)
        c0 = cpu_seconds(server.pid)
        time.sleep(10)
        slate_cpu = (cpu_seconds(server.pid) - c0) / 10
        slate_rss = rss_mb(server.pid)
        stop = threading.Event()
        sender = threading.Thread(target=send, args=(ports, stop))
        sender.start()
        time.sleep(5)
        c0, t0 = cpu_seconds(server.pid), time.monotonic()
        time.sleep(args.seconds)
        fed_cpu = (cpu_seconds(server.pid) - c0) / (time.monotonic() - t0)
        fed_rss = rss_mb(server.pid)
        stop.set()
        sender.join()
        log.flush()
        log.seek(0)
        ok = sum(1 for line in log if "live input ok" in line)
    finally:
        server.terminate()
        server.wait()
    mbit = send.total * 8 / 1e6 / (args.seconds + 5)
    print(f"{args.channels} live channels over UDP, {mbit:.1f} Mbit/s in all; inputs ok: {ok}")
    print(f"  slate only: {100 * slate_cpu:.2f} % of a core "
          f"({100 * slate_cpu / args.channels:.3f} % per channel), {slate_rss:.1f} MB resident")
    print(f"  fed:        {100 * fed_cpu:.2f} % of a core "
          f"({100 * fed_cpu / args.channels:.3f} % per channel), {fed_rss:.1f} MB resident")
    if ok != args.channels:
        print(f"only {ok} of {args.channels} inputs were ok: see {log.name}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
