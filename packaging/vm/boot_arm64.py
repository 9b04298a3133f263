#!/usr/bin/python3
"""The Raspberry Pi 4 SD image on QEMU's raspi4b board (TCG), to the serial console.

QEMU's Raspberry Pi 4B board boots the image's own kernel, initramfs and device tree
(bcm2711-rpi-4-b.dtb), the files config.txt names on the image's FAT boot partition, with
cmdline.txt as the kernel command line, from a copy of the SD image as the board's SD card.
QEMU loads the kernel itself (it does not emulate the VideoCore firmware that reads config.txt
on a real Pi), so what this proves is that config.txt names files that are there and boot,
that the DTB matches the kernel, and that cmdline.txt's root= finds and mounts the root
partition of the SD card; the serial console must show the kernel, the root mounted and
systemd reaching its targets. QEMU's raspi4b has no display, USB or network worth using:
serial only. The same image's root with a display, a network and a remote is driven by
`system_test.py --arch arm64` on the virt board.

Writes target/vm-arm64/{raspi4b-serial.log,report.json}.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from system_test import Failure, boot_files, sparse_copy, stop, tail  # noqa: E402

# What the raspi4b serial console must show, in order of appearance, and why.
RASPI_MILESTONES = [
    ("kernel", re.compile(r"Linux version \S+")),
    ("device tree", re.compile(r"Machine model: Raspberry Pi 4 Model B")),
    ("root mounted", re.compile(r"EXT4-fs \(mmcblk\d+p2\): mounted filesystem")),
    ("systemd", re.compile(r"systemd\[1\]: systemd \d+")),
    ("systemd target", re.compile(r"Reached target .*(Multi-User System|Graphical Interface)")),
]


def wait_serial(path, proc, milestones, timeout, t0):
    """Times (s from t0) at which each milestone first shows in the serial log."""
    seen = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = open(path, "rb").read().decode("utf-8", "replace")
        except FileNotFoundError:
            text = ""
        for name, pattern in milestones:
            if name not in seen and pattern.search(text):
                seen[name] = round(time.monotonic() - t0, 1)
        if len(seen) == len(milestones) or "Kernel panic" in text:
            return seen, text
        if proc.poll() is not None:
            return seen, text
        time.sleep(1)
    return seen, text


# Appended after cmdline.txt (the kernel keeps the last value of each parameter): a serial
# console on the PL011 (ttyAMA0, QEMU's first serial port on both boards), kernel messages and
# systemd's status lines shown there despite `quiet`, the journal forwarded to it too.
SERIAL = ("console=ttyAMA0,115200 loglevel=7 systemd.show_status=1 "
          "systemd.journald.forward_to_console=1")

# Nodes of Debian's bcm2711-rpi-4-b.dtb for hardware QEMU's raspi4b does not emulate, disabled
# on a copy of the DTB, as QEMU itself already does for PCIe, the RNG, thermal and GENET when
# it loads a DTB. With them enabled the kernel takes a synchronous external abort probing the
# L2 interrupt controller, and the mini UART (the Pi's console, ttyS1) stalls the CPU in
# serial8250_startup setting up its interrupt: the console goes to the PL011 instead, whose
# Bluetooth child is disabled (there is no radio behind it), as is the Wi-Fi chip.
RASPI_UNEMULATED = [
    "/soc/clock@7ef00000",
    "/soc/interrupt-controller@7ef00100",
    "/soc/hdmi@7ef00700",
    "/soc/i2c@7ef04500",
    "/soc/hdmi@7ef05700",
    "/soc/i2c@7ef09500",
    "/soc/serial@7e215040",
    "/soc/serial@7e201000/bluetooth",
    "/soc/mmc@7e300000/wifi@1",
]
# Where the SD card is. On a Pi 4 it sits on EMMC2 (mmc@7e340000); QEMU's raspi4b wires its SD
# card to the older Arasan SDHCI (mmc@7e300000), which the Pi 4 uses for the Wi-Fi chip: that
# controller's Wi-Fi properties (a power sequence through the firmware's GPIO expander, which
# QEMU does not answer, and "non-removable") are dropped and the card is polled for.
RASPI_SD = "/soc/mmc@7e300000"


def raspi_dtb(dtb, work):
    """A copy of the image's DTB fitted to QEMU's raspi4b (see RASPI_UNEMULATED, RASPI_SD)."""
    patched = f"{work}/bcm2711-rpi-4-b-qemu.dtb"
    shutil.copyfile(dtb, patched)

    def fdtput(*args):
        out = subprocess.run(["fdtput", patched, *args], capture_output=True, text=True)
        if out.returncode != 0:
            raise Failure(f"the image's DTB does not fit QEMU's raspi4b (fdtput {' '.join(args)}):"
                          f" {out.stderr.strip()}")

    for node in RASPI_UNEMULATED:
        fdtput("-t", "s", node, "status", "disabled")
    fdtput("-d", RASPI_SD, "mmc-pwrseq")
    fdtput("-d", RASPI_SD, "non-removable")
    fdtput("-t", "s", RASPI_SD, "broken-cd", "")
    fdtput("-t", "s", "/chosen", "stdout-path", "serial0:115200n8")
    return patched


def boot_raspi4b(qemu, image, files, work, out, timeout):
    sd = f"{work}/sd.img"
    size = os.path.getsize(image)
    # An SD card's size is a power of two for QEMU's SD model: the copy is grown to the next one
    # (the partitions and their offsets stay as they are).
    sparse_copy(image, sd, 1 << (size - 1).bit_length())
    serial = f"{out}/raspi4b-serial.log"
    # A log left by an earlier run would pass every milestone before QEMU writes a line.
    for stale in (serial, f"{out}/report.json"):
        if os.path.exists(stale):
            os.remove(stale)
    cmd = [qemu, "-M", "raspi4b", "-accel", "tcg", "-display", "none",
           "-kernel", files["kernel"], "-initrd", files["initrd"],
           "-dtb", raspi_dtb(files["dtb"], work),
           "-append", f"{files['cmdline']} {SERIAL}",
           "-drive", f"file={sd},format=raw,if=sd",
           "-serial", f"file:{serial}", "-monitor", "none", "-no-reboot"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=open(f"{out}/raspi4b-qemu.log", "w"))
    try:
        seen, text = wait_serial(serial, proc, RASPI_MILESTONES, timeout, t0)
        exited = proc.poll()  # before stop(): QEMU's own exit, or None if it still ran
    finally:
        stop(proc)
    print(f"  raspi4b milestones (s from QEMU start): {json.dumps(seen)}")
    missing = [name for name, _ in RASPI_MILESTONES if name not in seen]
    if missing:
        raise Failure(f"raspi4b: the serial console never showed {', '.join(missing)} "
                      f"(QEMU {'still running' if exited is None else f'exited {exited}'});"
                      f" last lines of {serial}:\n{tail(text)}")
    lines = [next(line for line in text.splitlines() if p.search(line))
             for _, p in RASPI_MILESTONES]
    for line in lines:
        print(f"    {line.strip()}")
    return seen


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="target/image-arm64/stb-rpi4-arm64.img")
    ap.add_argument("--out", default="target/vm-arm64")
    ap.add_argument("--timeout", type=float, default=900, help="seconds")
    args = ap.parse_args()
    os.chdir(os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
    qemu = shutil.which("qemu-system-aarch64")
    if not qemu:
        raise Failure("qemu-system-aarch64 is not installed: run packaging/vm/install-qemu.sh arm64")
    if not shutil.which("fdtput"):
        raise Failure("fdtput is missing: apt-get install device-tree-compiler")
    if not os.path.exists(args.image):
        raise Failure(f"no SD image {args.image}: run packaging/image/build-image.sh --arch arm64")
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="stb-arm64-")
    try:
        files = boot_files(args.image, work, dtb="bcm2711-rpi-4-b.dtb")
        print(f"== boot files: config.txt -> {os.path.basename(files['kernel'])}, "
              f"{os.path.basename(files['initrd'])}; cmdline.txt: {files['cmdline']}")
        print("== raspi4b: the image's kernel, initramfs and DTB, root on the SD card")
        report = {"raspi4b_s": boot_raspi4b(qemu, args.image, files, work, args.out,
                                            args.timeout)}
        with open(f"{args.out}/report.json", "w") as f:
            json.dump(report, f, indent=2)
        print("raspi4b boot: passed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (Failure, subprocess.CalledProcessError) as e:
        print(f"raspi4b boot FAILED: {e}", file=sys.stderr)
        sys.exit(1)
