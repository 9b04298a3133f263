#!/usr/bin/python3
"""The box image as a TV box: boots it under QEMU and drives it with a remote.

On the host's loopback: the real content server and key server (this workspace's release
binaries), an operator set-up (`init`, a subscriber), and the subscriber registered with
`stb-app register`, as packaging/debian and tests/src/lib.rs do it. The guest reaches them at
10.0.2.2, QEMU's user-mode network alias for the host's loopback, so the servers' certificates
are made for that address too.

The guest boots a copy of the disk image (amd64: firmware, syslinux, Debian's kernel, systemd;
arm64 with --arch arm64: the Raspberry Pi image's own kernel and initramfs from its boot
partition, on QEMU's virt board) with a virtio-gpu display and a virtio keyboard, which is the
remote: a real evdev device in the guest, named /dev/input/remote by a udev rule and set as
stb-app's input device, so the keys go through stb-app's evdev path with a remote's key codes
(arrows, ENTER = OK, PAGEUP = CH+, POWER). What the copy gets before it boots, written into its
ext4 root with debugfs (no mount): the box configuration (URLs, the two CAs, the remote), that
udev rule, journald forwarding to the serial console, and a probe unit that logs stb-app's
memory every few seconds.

Flow: boot -> login screen -> identifier and password typed on the on-screen keyboard with the
remote -> channel 1's picture -> CH+ -> channel 2 -> POWER (standby: dark) -> POWER (channel 2
again, no password) -> MENU, Log out, OK -> "Logged out" -> login screen. Screens are taken
over QMP (screendump) and checked by their pixels; the serial log (kernel, systemd, journal)
must show no panic and never the password. Prints the timings and writes report.json.
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import zlib

HOST = "10.0.2.2"  # the host's loopback as the guest sees it (QEMU user-mode network)
IDENTIFIER = "ada.lovelace"
PASSWORD = "Sofa-Remote#2026!"
SUBSCRIBER = "Ada Lovelace"
UI_BACKGROUND = (0x0B, 0x13, 0x24)  # stb-app/ui/theme.slint: Palette.background


class Failure(Exception):
    pass


# ----- pictures -----------------------------------------------------------------------------

def read_ppm(path):
    with open(path, "rb") as f:
        data = f.read()
    fields, pos = [], 0
    while len(fields) < 4:
        while data[pos:pos + 1].isspace():
            pos += 1
        if data[pos:pos + 1] == b"#":
            pos = data.index(b"\n", pos) + 1
            continue
        end = pos
        while not data[end:end + 1].isspace():
            end += 1
        fields.append(data[pos:end])
        pos = end
    if fields[0] != b"P6" or fields[3] != b"255":
        raise Failure(f"{path}: not a binary 8-bit PPM")
    width, height = int(fields[1]), int(fields[2])
    return width, height, data[pos + 1:pos + 1 + width * height * 3]


def write_png(path, width, height, rgb):
    stride = width * 3
    raw = b"".join(b"\0" + rgb[y * stride:(y + 1) * stride] for y in range(height))

    def chunk(kind, body):
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n")
        f.write(chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        f.write(chunk(b"IDAT", zlib.compress(raw, 6)))
        f.write(chunk(b"IEND", b""))


def stats(rgb):
    """Fractions of sampled pixels: UI background, saturated colour, near black, bright."""
    n = bg = sat = black = bright = 0
    for i in range(0, len(rgb) - 2, 3 * 7):  # every 7th pixel
        r, g, b = rgb[i], rgb[i + 1], rgb[i + 2]
        n += 1
        if (abs(r - UI_BACKGROUND[0]) < 10 and abs(g - UI_BACKGROUND[1]) < 10
                and abs(b - UI_BACKGROUND[2]) < 10):
            bg += 1
        hi, lo = max(r, g, b), min(r, g, b)
        if hi - lo > 80:
            sat += 1
        if hi < 30:
            black += 1
        if lo > 200:
            bright += 1
    return {"ui_background": bg / n, "saturated": sat / n, "black": black / n,
            "bright": bright / n, "centre": centre(rgb)}


def centre(rgb, width=1280, height=720):
    """Mean brightest channel of the 40x40 block at the centre (a message box is there)."""
    if len(rgb) != width * height * 3:
        return 0.0
    total = 0
    for y in range(height // 2 - 20, height // 2 + 20):
        for x in range(width // 2 - 20, width // 2 + 20):
            i = (y * width + x) * 3
            total += max(rgb[i], rgb[i + 1], rgb[i + 2])
    return total / 1600


def difference(a, b):
    """Fraction of sampled pixels that changed between two pictures of the same size."""
    if len(a) != len(b):
        return 1.0
    n = changed = 0
    for i in range(0, len(a) - 2, 3 * 7):
        n += 1
        if abs(a[i] - b[i]) + abs(a[i + 1] - b[i + 1]) + abs(a[i + 2] - b[i + 2]) > 30:
            changed += 1
    return changed / n


def is_login(s):
    # The dark blue UI with the keyboard panel and white text, no video.
    return s["ui_background"] > 0.4 and 0.002 < s["bright"] < 0.2 and s["saturated"] < 0.1


def is_logged_out(s):
    # A message box over the login screen dimmed by the scrim: dark, a little text.
    return s["black"] > 0.5 and s["saturated"] < 0.05 and s["bright"] > 0.001 \
        and s["centre"] > 35


def is_standby(s):
    # Nothing on screen: every sampled pixel near black.
    return s["black"] > 0.995 and s["bright"] == 0


def is_channel1(s):
    # SMPTE colour bars: most of the screen strongly coloured, no UI background.
    return s["saturated"] > 0.3 and s["ui_background"] < 0.05


def is_channel2(s):
    # The moving ball on black: mostly black, a white ball and the overlays, no colour bars.
    # (The spinner while tuning is black and moving too, but its dots are under 0.4 % bright.)
    return s["black"] > 0.5 and s["saturated"] < 0.1 and s["bright"] > 0.01 \
        and s["ui_background"] < 0.05


# ----- QMP ----------------------------------------------------------------------------------

class Qmp:
    def __init__(self, path, deadline):
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.connect(path)
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise Failure(f"QMP socket {path} did not come up")
                time.sleep(0.2)
        self.file = self.sock.makefile("rwb")
        self._read()  # greeting
        self.command("qmp_capabilities")

    def _read(self):
        while True:
            line = self.file.readline()
            if not line:
                raise Failure("QEMU closed the QMP connection")
            msg = json.loads(line)
            if "event" not in msg:
                return msg

    def command(self, name, **arguments):
        msg = {"execute": name}
        if arguments:
            msg["arguments"] = arguments
        self.file.write(json.dumps(msg).encode() + b"\n")
        self.file.flush()
        reply = self._read()
        if "error" in reply:
            raise Failure(f"QMP {name}: {reply['error']}")
        return reply.get("return")

    def key(self, qcode):
        """One press and release in one batch, so the guest never sees the key held long
        enough to auto-repeat. No `device`: that argument names a display, not an input
        device; events go to the keyboard the guest activated last, the virtio one (the
        PS/2 keyboard of the q35 board is not read by anyone: stb-app grabs only the remote)."""
        ev = [{"type": "key", "data": {"down": down, "key": {"type": "qcode", "data": qcode}}}
              for down in (True, False)]
        self.command("input-send-event", events=ev)


# ----- the on-screen keyboard (stb-app/src/ui/keyboard.rs) -----------------------------------

ROWS = ["1234567890", "qwertyuiop", "asdfghjkl@", "zxcvbnm.-_", "!#$%&*+?=/"]
SPECIAL = ["shift", "space", "delete", "done"]


class Osk:
    """Where the highlight is, moved the way the box moves it."""

    def __init__(self):
        self.row, self.col = 0, 0

    def _move_to_row(self, row):
        from_special = self.row == len(ROWS)
        self.row = row
        to_special = row == len(ROWS)
        width = 10 / len(SPECIAL)
        if not from_special and to_special:
            self.col = int(self.col / width)
        elif from_special and not to_special:
            self.col = int((self.col + 0.5) * width)
        self.col = min(self.col, (len(SPECIAL) if to_special else 10) - 1)

    def path_to(self, row, col):
        keys = []
        while self.row != row:
            keys.append("down" if row > self.row else "up")
            self._move_to_row(self.row + (1 if row > self.row else -1))
        while self.col != col:
            keys.append("right" if col > self.col else "left")
            self.col += 1 if col > self.col else -1
        return keys


def keys_for(text):
    """Remote keys that type `text` then press Done, from a fresh form (highlight on '1')."""
    osk, keys = Osk(), []
    for c in text:
        if c.isdigit():
            keys.append(c)  # digits are typed straight from the remote
            continue
        if c.isupper():
            keys += osk.path_to(len(ROWS), 0) + ["ret"]  # Shift: the next letter is upper case
            c = c.lower()
        row = next(r for r, chars in enumerate(ROWS) if c in chars)
        keys += osk.path_to(row, ROWS[row].index(c)) + ["ret"]
    keys += osk.path_to(len(ROWS), 3) + ["ret"]  # Done / Log in
    return keys


# ----- the servers --------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(cmd, **kw):
    out = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if out.returncode != 0:
        raise Failure(f"{' '.join(cmd)} failed: {out.stderr.strip()}")
    return out.stdout


def wait_healthy(port, ca, log, procs):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ok = subprocess.run(["curl", "-sf", "-o", "/dev/null", "--cacert", ca,
                             f"https://127.0.0.1:{port}/healthz"]).returncode == 0
        if ok:
            return
        if any(p.poll() is not None for p in procs):
            break
        time.sleep(0.2)
    with open(log) as f:
        raise Failure(f"server on {port} not healthy:\n{f.read()[-3000:]}")


def start_servers(bins, repo, work, procs):
    content = [f"{bins}/content-server", "--data-dir", f"{work}/content",
               "--channels", f"{repo}/media-fixtures/channels.toml"]
    keys = [f"{bins}/keyserver", "--data-dir", f"{work}/keyserver"]
    cp, ep, kp = free_port(), free_port(), free_port()
    run(content + ["init", "--name", HOST])
    out = run(content + ["subscriber", "add", SUBSCRIBER, "--package", "basic"])
    code = next(w for w in out.split() if len(w) == 14 and w.count("-") == 2)
    run(keys + ["init", "--name", HOST])
    ca = f"{work}/content/ca/ca.crt"
    ks_cert = f"{work}/keyserver/tls/server.crt"
    log = f"{work}/content.log"
    procs.append(subprocess.Popen(
        content + ["serve", "--listen", f"127.0.0.1:{cp}", "--enroll-listen", f"127.0.0.1:{ep}",
                   "--public-url", f"https://{HOST}:{cp}", "--keyserver-url", f"https://{HOST}:{kp}"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w")))
    wait_healthy(ep, ca, log, procs)
    log = f"{work}/keyserver.log"
    procs.append(subprocess.Popen(
        keys + ["serve", "--listen", f"127.0.0.1:{kp}", "--admin-listen", "none",
                "--operator-ca", ca, "--operator-crl", f"https://127.0.0.1:{ep}/v1/crl"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w")))
    wait_healthy(kp, ks_cert, log, procs)
    # Registration from the host, as a box's first run would do it (password twice on stdin).
    host_cfg = f"{work}/host-box.toml"
    with open(host_cfg, "w") as f:
        f.write(f'keyserver_url = "https://127.0.0.1:{kp}"\nkeyserver_ca = "{ks_cert}"\n'
                f'enroll_url = "https://127.0.0.1:{ep}"\nenroll_ca = "{ca}"\n')
    subprocess.run([f"{bins}/stb-app", "--config", host_cfg, "register", "--code", code,
                    "--identifier", IDENTIFIER], input=f"{PASSWORD}\n{PASSWORD}\n",
                   capture_output=True, text=True, check=True)
    return {"content": cp, "enroll": ep, "keys": kp, "ca": ca, "ks_cert": ks_cert}


# ----- processes and the guest's disk -------------------------------------------------------

def stop(proc):
    """Stops QEMU (or any child): SIGTERM, then SIGKILL after 10 s."""
    if proc and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def tail(text, n=60):
    return "\n".join(text.splitlines()[-n:])


def sparse_copy(image, dest, size=None):
    """A copy of the image that QEMU may write to (grown to `size` bytes if given)."""
    subprocess.run(["cp", "--sparse=always", image, dest], check=True)
    if size:
        os.truncate(dest, size)


def partition(image, number):
    """Offset in bytes of primary partition `number` (1-4) of the image's MBR."""
    with open(image, "rb") as f:
        mbr = f.read(512)
    if mbr[510:512] != b"\x55\xaa":
        raise Failure(f"{image}: no MBR partition table")
    start, count = struct.unpack_from("<II", mbr, 0x1BE + 16 * (number - 1) + 8)
    if not count:
        raise Failure(f"{image} has no partition {number}")
    return start * 512


def boot_files(image, work, dtb=None):
    """Reads config.txt and cmdline.txt from the Pi image's boot partition and copies out the
    kernel and the initramfs they lead to, and the device tree `dtb` if named."""
    boot_offset = partition(image, 1)
    if not shutil.which("mcopy"):
        raise Failure("mcopy is missing: apt-get install mtools")
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
             "cmdline": cmdline}
    if dtb:
        files["dtb"] = mcopy(dtb)
    return files


PROBE = """#!/bin/sh
# Test probe: stb-app's memory, every 5 s, into the journal (and so the serial console).
while sleep 5; do
  pid=$(systemctl show -p MainPID --value stb-app.service)
  rss=$(grep -E '^(VmRSS|VmHWM):' "/proc/$pid/status" 2>/dev/null | tr -s ' \\t\\n' ' ')
  echo "stb-probe: pid=$pid $rss cgroup=$(systemctl show -p MemoryCurrent --value stb-app.service)"
done
"""


def prepare_disk(image, disk, servers, work, console):
    sparse_copy(image, disk)
    root_offset = partition(disk, 2)  # the root, on both boxes
    files = {
        "config.toml": (
            f'keyserver_url = "https://{HOST}:{servers["keys"]}"\n'
            'keyserver_ca = "/etc/stb-app/keyserver-ca.pem"\n'
            f'enroll_url = "https://{HOST}:{servers["enroll"]}"\n'
            'enroll_ca = "/etc/stb-app/operator-ca.pem"\n'
            'video_sink = "kmssink"\naudio_sink = "autoaudiosink"\n'
            'inactivity_timeout_secs = 14400\nkeymap = "/etc/stb-app/keymap.toml"\n'
            'input_devices = ["/dev/input/remote"]\n'),
        "keyserver-ca.pem": open(servers["ks_cert"]).read(),
        "operator-ca.pem": open(servers["ca"]).read(),
        "70-stb-remote.rules": 'SUBSYSTEM=="input", KERNEL=="event*", '
                               'ATTRS{name}=="QEMU Virtio Keyboard", SYMLINK+="input/remote"\n',
        "serial.conf": f"[Journal]\nForwardToConsole=yes\nTTYPath=/dev/{console}\n"
                       "MaxLevelConsole=info\n",
        "stb-probe": PROBE,
        "stb-probe.service": "[Unit]\nDescription=Test probe: stb-app memory\n"
                             "[Service]\nExecStart=/bin/sh /usr/local/sbin/stb-probe\n",
    }
    for name, text in files.items():
        with open(f"{work}/{name}", "w") as f:
            f.write(text)
        os.chmod(f"{work}/{name}", 0o644)
    cmds = [
        "rm /etc/stb-app/config.toml",
        f"write {work}/config.toml /etc/stb-app/config.toml",
        f"write {work}/keyserver-ca.pem /etc/stb-app/keyserver-ca.pem",
        f"write {work}/operator-ca.pem /etc/stb-app/operator-ca.pem",
        "mkdir /etc/udev/rules.d",
        f"write {work}/70-stb-remote.rules /etc/udev/rules.d/70-stb-remote.rules",
        f"write {work}/serial.conf /etc/systemd/journald.conf.d/serial.conf",
        f"write {work}/stb-probe /usr/local/sbin/stb-probe",
        f"write {work}/stb-probe.service /etc/systemd/system/stb-probe.service",
        "symlink /etc/systemd/system/multi-user.target.wants/stb-probe.service "
        "/etc/systemd/system/stb-probe.service",
    ]
    with open(f"{work}/debugfs.cmds", "w") as f:
        f.write("\n".join(cmds) + "\n")
    target = f"{disk}?offset={root_offset}"
    subprocess.run(["debugfs", "-w", "-f", f"{work}/debugfs.cmds", target],
                   capture_output=True, check=True)
    check = subprocess.run(["debugfs", "-R", "cat /etc/stb-app/config.toml", target],
                           capture_output=True, text=True)
    if "/dev/input/remote" not in check.stdout:
        raise Failure(f"could not write the box configuration into {disk}: {check.stderr}")


# ----- the test -----------------------------------------------------------------------------

# Per box: its image, QEMU, the serial console's name in the guest, where the files go, and
# how long emulating it may take (TCG: an emulated arm64 CPU is about twice as slow here).
BOXES = {
    "amd64": {"image": "target/image-amd64/stb-amd64.img", "qemu": "qemu-system-x86_64",
              "console": "ttyS0", "out": "target/vm-test", "prefix": "vm-",
              "boot_timeout": 420, "step_timeout": 120},
    "arm64": {"image": "target/image-arm64/stb-rpi4-arm64.img", "qemu": "qemu-system-aarch64",
              "console": "ttyAMA0", "out": "target/vm-test-arm64", "prefix": "vm-arm64-",
              "boot_timeout": 600, "step_timeout": 300},
}


def qemu_command(arch, qemu, disk, work, serial, qmp_path):
    """The box as QEMU runs it. amd64: a PC (q35) booting the disk through its BIOS and
    syslinux. arm64: the Raspberry Pi image's own kernel, initramfs and command line (from
    its boot partition, as config.txt names them) on the generic virt board, which has the
    PCI display, disk and network that QEMU's raspi4b lacks."""
    common = ["-accel", "tcg", "-smp", "2", "-m", "2048", "-display", "none",
              "-device", "virtio-gpu-pci,xres=1280,yres=720",
              "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0",
              "-device", "virtio-keyboard-pci,id=remote",
              "-audiodev", "none,id=snd0", "-device", "intel-hda",
              "-device", "hda-output,audiodev=snd0",
              "-serial", f"file:{serial}", "-monitor", "none",
              "-qmp", f"unix:{qmp_path},server=on,wait=off", "-no-reboot"]
    if arch == "amd64":
        return [qemu, "-M", "q35", "-cpu", "max", "-vga", "none",
                "-drive", f"file={disk},format=raw,if=virtio"] + common
    files = boot_files(disk, work)
    return [qemu, "-M", "virt", "-cpu", "cortex-a72",
            "-kernel", files["kernel"], "-initrd", files["initrd"],
            # The kernel keeps the last console= as /dev/console: systemd's status lines go to
            # the serial port, as on the amd64 box.
            "-append", f"{files['cmdline']} console=ttyAMA0,115200",
            "-drive", f"file={disk},format=raw,if=none,id=root",
            "-device", "virtio-blk-pci,drive=root"] + common


def main():
    # No abbreviations: system-test.sh reads --arch too.
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    ap.add_argument("--arch", choices=sorted(BOXES), default="amd64")
    ap.add_argument("--image")
    ap.add_argument("--bin-dir", default="target/release")
    ap.add_argument("--out")
    ap.add_argument("--screenshots", default="docs/screenshots")
    ap.add_argument("--boot-timeout", type=float)
    ap.add_argument("--step-timeout", type=float)
    args = ap.parse_args()
    box = BOXES[args.arch]
    for name in ("image", "out", "boot_timeout", "step_timeout"):
        if getattr(args, name) is None:
            setattr(args, name, box[name])
    repo = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
    os.chdir(repo)
    qemu = shutil.which(box["qemu"])
    if not qemu:
        raise Failure(f"{box['qemu']} is not installed: run packaging/vm/install-qemu.sh {args.arch}")
    if not os.path.exists(args.image):
        raise Failure(f"no disk image {args.image}: run packaging/image/build-image.sh --arch {args.arch}")
    for b in ("content-server", "keyserver", "stb-app"):
        if not os.access(f"{args.bin_dir}/{b}", os.X_OK):
            raise Failure(f"no {args.bin_dir}/{b}: cargo build --release first")
    os.makedirs(args.out, exist_ok=True)
    os.makedirs(args.screenshots, exist_ok=True)
    work = tempfile.mkdtemp(prefix="stb-vm-")
    procs, qemu_proc = [], None
    serial = os.path.abspath(f"{args.out}/serial.log")
    for stale in (serial, f"{args.out}/report.json"):  # only this run's may be read
        if os.path.exists(stale):
            os.remove(stale)
    report = {}

    def serial_text():
        try:
            with open(serial, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except FileNotFoundError:
            return ""

    def fail_with_serial(msg):
        raise Failure(f"{msg}\n--- last lines of the serial console ({serial}) ---\n"
                      f"{tail(serial_text())}")

    try:
        t0 = time.monotonic()
        servers = start_servers(os.path.abspath(args.bin_dir), repo, work, procs)
        disk = f"{work}/disk.img"
        prepare_disk(args.image, disk, servers, work, box["console"])
        report["setup_s"] = round(time.monotonic() - t0, 1)

        qmp_path = f"{work}/qmp.sock"
        cmd = qemu_command(args.arch, qemu, disk, work, serial, qmp_path)
        boot_start = time.monotonic()
        qemu_proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                     stderr=open(f"{args.out}/qemu.log", "w"))
        qmp = Qmp(qmp_path, boot_start + 30)
        ppm = f"{work}/screen.ppm"

        def screen():
            if qemu_proc.poll() is not None:
                fail_with_serial(f"QEMU exited ({qemu_proc.returncode}); see {args.out}/qemu.log")
            qmp.command("screendump", filename=ppm)
            w, h, rgb = read_ppm(ppm)
            return w, h, rgb, stats(rgb)

        def wait_for(what, check, timeout, moving=False, still=False):
            """Screens until `check` holds (and, with `moving`, the next one differs: video;
            with `still`, the next one is the same: no video behind)."""
            deadline = time.monotonic() + timeout
            last = None
            w = h = 0
            s = {}
            while time.monotonic() < deadline:
                try:
                    w, h, rgb, s = screen()
                except Failure as e:
                    if qemu_proc.poll() is not None:
                        raise
                    s = {"screendump": str(e)}  # no display set up yet (early boot)
                    time.sleep(1)
                    continue
                if check(s):
                    if not (moving or still):
                        return w, h, rgb, s
                    if last is not None and moving and difference(last, rgb) > 0.001:
                        return w, h, rgb, s
                    if last is not None and still and difference(last, rgb) < 0.0005:
                        return w, h, rgb, s
                    last = rgb
                else:
                    last = None
                time.sleep(0.5)
            fail_with_serial(f"timed out after {timeout:.0f} s waiting for {what} "
                             f"(last screen: {s}, {w}x{h})")

        def save(name, shot):
            w, h, rgb, s = shot
            name = box["prefix"] + name
            write_png(f"{args.screenshots}/{name}.png", w, h, rgb)
            print(f"  {name}.png {w}x{h} {json.dumps({k: round(v, 3) for k, v in s.items()})}")

        def timed(key, what, check, **kw):
            """`wait_for` right after a key press; the time it took goes into the report."""
            t = time.monotonic()
            shot = wait_for(what, check, args.step_timeout, **kw)
            report[key] = round(time.monotonic() - t, 1)
            return shot

        def press(keys, pause=0.12):
            for k in keys:
                qmp.key(k)
                time.sleep(pause)

        print("== boot")
        shot = wait_for("the login screen", is_login, args.boot_timeout)
        report["boot_to_login_s"] = round(time.monotonic() - boot_start, 1)
        save("login", shot)

        print("== login with the remote")
        time.sleep(3)  # stb-app looks for the remote every 2 s
        press(keys_for(IDENTIFIER))
        password_keys = keys_for(PASSWORD)
        press(password_keys[:-1])
        time.sleep(1)
        save("login-typed", screen())
        press(password_keys[-1:])
        shot = timed("login_to_picture_s", "channel 1's picture", is_channel1, moving=True)
        save("channel1", shot)

        print("== CH+")
        press(["pgup"])
        shot = timed("zap_to_picture_s", "channel 2's picture", is_channel2, moving=True)
        save("channel2", shot)
        time.sleep(6)  # a probe line while channel 2 plays

        print("== POWER: standby")
        press(["power"])
        shot = timed("power_to_standby_s", "the dark screen of standby", is_standby, still=True)
        save("standby", shot)
        time.sleep(2)
        print("== POWER again: the same channel, no password")
        press(["power"])
        timed("standby_to_picture_s", "channel 2's picture after standby", is_channel2,
              moving=True)

        print("== MENU, Log out, OK")
        # HOME is mapped to the menu, like MENU; Log out is its third entry.
        press(["home", "down", "down", "ret"])
        time.sleep(1)
        save("logout-confirm", screen())
        press(["ret"])
        # "Logged out" over the dimmed login screen: dark, some text, and no video behind.
        shot = timed("confirm_to_logged_out_s", "the logged-out message", is_logged_out,
                     still=True)
        save("logout", shot)
        press(["ret"])  # OK closes the message: the login screen
        shot = wait_for("the login screen after logging out", is_login, args.step_timeout)
        save("login-again", shot)
        time.sleep(1)
        qmp.command("quit")
        qemu_proc.wait(timeout=30)

        print("== the guest's journal (serial console)")
        log = serial_text()
        for bad, why in (("panicked", "a panic"), (PASSWORD, "the password"),
                         ("status=208", "a unit that could not start (status 208)"),
                         ("cannot open input device", "a remote stb-app could not open")):
            if bad in log:
                raise Failure(f"the serial log ({serial}) holds {why}")
        for needed in ("Started stb-app.service", "stb-probe:"):
            if needed not in log:
                raise Failure(f"the serial log ({serial}) lacks {needed!r}")
        rss = [int(line.split("VmRSS:")[1].split()[0]) for line in log.splitlines()
               if "stb-probe:" in line and "VmRSS:" in line]
        hwm = [int(line.split("VmHWM:")[1].split()[0]) for line in log.splitlines()
               if "stb-probe:" in line and "VmHWM:" in line]
        report["stb_app_rss_max_mib"] = round(max(rss) / 1024, 1) if rss else None
        report["stb_app_rss_peak_hwm_mib"] = round(max(hwm) / 1024, 1) if hwm else None
        report["starts_of_stb_app"] = log.count("Started stb-app.service")
        report["total_s"] = round(time.monotonic() - t0, 1)
        with open(f"{args.out}/report.json", "w") as f:
            json.dump(report, f, indent=2)
        print(json.dumps(report, indent=2))
        print("vm system test: 1 passed, 0 failed")
    finally:
        stop(qemu_proc)
        for p in procs:
            p.kill()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        main()
    except (Failure, subprocess.CalledProcessError) as e:
        print(f"vm system test FAILED: {e}", file=sys.stderr)
        print("vm system test: 0 passed, 1 failed")
        sys.exit(1)
