#!/usr/bin/python3
"""The Raspberry Pi 4 SD image booted in QEMU (TCG), twice.

1. raspi4b: QEMU's Raspberry Pi 4B board boots the image's own kernel, initramfs and device
   tree (bcm2711-rpi-4-b.dtb), the files config.txt names on the image's FAT boot partition,
   with cmdline.txt as the kernel command line, from a copy of the SD image on the board's SD
   controller. QEMU loads the kernel itself (it does not emulate the VideoCore firmware that
   reads config.txt on a real Pi), so what this proves is that config.txt names files that
   are there and boot, that the DTB matches the kernel, and that cmdline.txt's root= finds and
   mounts the root partition of the SD card; the serial console must show the kernel, the
   root mounted and systemd reaching its targets. QEMU's raspi4b has no display, USB or
   network worth using: serial only.
2. virt: the same kernel and initramfs on QEMU's generic `virt` board (cortex-a72) with the
   image's root on a virtio disk, a virtio-gpu display and a virtio keyboard: the box's own
   stb-app.service draws the login screen through DRM/KMS with Slint's linuxkms backend, taken
   over QMP (screendump) and checked by its pixels like the amd64 system test does.

Writes target/vm-arm64/{raspi4b-serial.log,virt-serial.log,report.json} and
docs/screenshots/vm-arm64-login.png.
"""

import argparse
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from system_test import Failure, Qmp, is_login, read_ppm, stats, write_png  # noqa: E402

# What the raspi4b serial console must show, in order of appearance, and why.
RASPI_MILESTONES = [
    ("kernel", re.compile(r"Linux version \S+")),
    ("device tree", re.compile(r"Machine model: Raspberry Pi 4 Model B")),
    ("root mounted", re.compile(r"EXT4-fs \(mmcblk\d+p2\): mounted filesystem")),
    ("systemd", re.compile(r"systemd\[1\]: systemd \d+")),
    ("systemd target", re.compile(r"Reached target .*(Multi-User System|Graphical Interface)")),
]


def partitions(image):
    """(start, size) in bytes of the MBR's primary partitions."""
    with open(image, "rb") as f:
        mbr = f.read(512)
    if mbr[510:512] != b"\x55\xaa":
        raise Failure(f"{image}: no MBR partition table")
    parts = []
    for i in range(4):
        start, count = struct.unpack_from("<II", mbr, 0x1BE + 16 * i + 8)
        if count:
            parts.append((start * 512, count * 512))
    return parts


def boot_files(image, work):
    """Reads config.txt and cmdline.txt from the boot partition and copies out the kernel, the
    initramfs and the Pi 4 device tree they lead to."""
    boot_offset = partitions(image)[0][0]
    env = dict(os.environ, MTOOLS_SKIP_CHECK="1")

    def mcopy(name):
        dest = f"{work}/{name}"
        out = subprocess.run(["mcopy", "-n", "-i", f"{image}@@{boot_offset}", f"::/{name}", dest],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise Failure(f"the boot partition of {image} has no {name}: {out.stderr.strip()}")
        return dest

    config = open(mcopy("config.txt")).read()
    kernel = re.search(r"^kernel=(\S+)", config, re.M)
    initramfs = re.search(r"^initramfs\s+(\S+)", config, re.M)
    if not kernel or not initramfs:
        raise Failure(f"config.txt names no kernel= or initramfs:\n{config}")
    if not re.search(r"^arm_64bit=1", config, re.M):
        raise Failure("config.txt does not boot the 64-bit kernel (arm_64bit=1)")
    cmdline = open(mcopy("cmdline.txt")).read().strip()
    files = {"kernel": mcopy(kernel.group(1)), "initrd": mcopy(initramfs.group(1)),
             "dtb": mcopy("bcm2711-rpi-4-b.dtb"), "cmdline": cmdline, "config": config}
    return files


def sparse_copy(image, dest, size=None):
    subprocess.run(["cp", "--sparse=always", image, dest], check=True)
    if size:
        os.truncate(dest, size)


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


def stop(proc):
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


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
    finally:
        stop(proc)
    print(f"  raspi4b milestones (s from QEMU start): {json.dumps(seen)}")
    missing = [name for name, _ in RASPI_MILESTONES if name not in seen]
    if missing:
        raise Failure(f"raspi4b: the serial console never showed {', '.join(missing)} "
                      f"(QEMU {'exited ' + str(proc.returncode) if proc.returncode else 'stopped'});"
                      f" last lines of {serial}:\n{tail(text)}")
    lines = [next(line for line in text.splitlines() if p.search(line))
             for _, p in RASPI_MILESTONES]
    for line in lines:
        print(f"    {line.strip()}")
    return seen


def boot_virt(qemu, image, files, work, out, shots, timeout):
    disk = f"{work}/virt.img"
    sparse_copy(image, disk)
    serial = f"{out}/virt-serial.log"
    qmp_path = f"{work}/qmp.sock"
    cmd = [qemu, "-M", "virt", "-accel", "tcg", "-cpu", "cortex-a72", "-smp", "2", "-m", "2048",
           "-display", "none",
           "-kernel", files["kernel"], "-initrd", files["initrd"],
           "-append", f"{files['cmdline']} {SERIAL}",
           "-drive", f"file={disk},format=raw,if=none,id=root",
           "-device", "virtio-blk-pci,drive=root",
           "-device", "virtio-gpu-pci,xres=1280,yres=720",
           "-device", "virtio-keyboard-pci", "-nic", "none",
           "-serial", f"file:{serial}", "-monitor", "none",
           "-qmp", f"unix:{qmp_path},server=on,wait=off", "-no-reboot"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                            stderr=open(f"{out}/virt-qemu.log", "w"))
    ppm = f"{work}/screen.ppm"
    s = {}
    try:
        qmp = Qmp(qmp_path, t0 + 30)
        deadline = t0 + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                qmp.command("screendump", filename=ppm)
                w, h, rgb = read_ppm(ppm)
                s = stats(rgb)
            except Failure as e:
                s = {"screendump": str(e)}
                time.sleep(1)
                continue
            if is_login(s):
                took = round(time.monotonic() - t0, 1)
                write_png(f"{shots}/vm-arm64-login.png", w, h, rgb)
                print(f"  vm-arm64-login.png {w}x{h} "
                      f"{json.dumps({k: round(v, 3) for k, v in s.items()})}")
                time.sleep(2)
                qmp.command("quit")
                proc.wait(timeout=30)
                text = open(serial, "rb").read().decode("utf-8", "replace")
                for bad in ("panicked", "Kernel panic", "status=208"):
                    if bad in text:
                        raise Failure(f"virt: the serial log ({serial}) holds {bad!r}")
                if "Started stb-app.service" not in text:
                    raise Failure(f"virt: the serial log ({serial}) lacks 'Started stb-app.service'")
                return took
            time.sleep(1)
    finally:
        stop(proc)
    text = open(serial, "rb").read().decode("utf-8", "replace") if os.path.exists(serial) else ""
    raise Failure(f"virt: no login screen within {timeout:.0f} s (last screen: {s}, QEMU "
                  f"{'exited ' + str(proc.returncode) if proc.returncode is not None else 'running'});"
                  f" last lines of {serial}:\n{tail(text)}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--image", default="target/image-arm64/stb-rpi4-arm64.img")
    ap.add_argument("--out", default="target/vm-arm64")
    ap.add_argument("--screenshots", default="docs/screenshots")
    ap.add_argument("--only", choices=["raspi4b", "virt"])
    ap.add_argument("--timeout", type=float, default=900, help="per boot, seconds")
    args = ap.parse_args()
    os.chdir(os.path.abspath(os.path.join(os.path.dirname(__file__), "../..")))
    qemu = shutil.which("qemu-system-aarch64")
    if not qemu:
        raise Failure("qemu-system-aarch64 is not installed: run packaging/vm/install-qemu.sh arm64")
    for tool, package in (("mcopy", "mtools"), ("fdtput", "device-tree-compiler")):
        if not shutil.which(tool):
            raise Failure(f"{tool} is missing: apt-get install {package}")
    if not os.path.exists(args.image):
        raise Failure(f"no SD image {args.image}: run packaging/image/build-image.sh --arch arm64")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.screenshots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="stb-arm64-")
    report = {}
    try:
        files = boot_files(args.image, work)
        print(f"== boot files: config.txt -> {os.path.basename(files['kernel'])}, "
              f"{os.path.basename(files['initrd'])}; cmdline.txt: {files['cmdline']}")
        if args.only in (None, "raspi4b"):
            print("== raspi4b: the image's kernel, initramfs and DTB, root on the SD card")
            seen = boot_raspi4b(qemu, args.image, files, work, args.out, args.timeout)
            report["raspi4b_s"] = seen
            os.remove(f"{work}/sd.img")
        if args.only in (None, "virt"):
            print("== virt: the image's root with virtio-gpu, the box's login screen")
            report["virt_boot_to_login_s"] = boot_virt(qemu, args.image, files, work, args.out,
                                                       args.screenshots, args.timeout)
        with open(f"{args.out}/report.json", "w") as f:
            json.dump(report, f, indent=2)
        print(json.dumps(report, indent=2))
        print("arm64 boot: passed")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (Failure, subprocess.CalledProcessError) as e:
        print(f"arm64 boot FAILED: {e}", file=sys.stderr)
        sys.exit(1)
