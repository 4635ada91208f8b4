#!/usr/bin/env python3
"""Run pytest inside a throwaway QEMU VM whose kernel audit can be configured.

Kernel audit state is global and can be locked (`enabled 2`) until reboot, so the tests that
add rules or change settings skip on such a machine. This boots a Debian kernel with `audit=1`
in a VM that sees this host's root file system read-only over virtio-9p, with a tmpfs overlay
on top (writes in the VM are thrown away), and runs `pytest -q -p no:cacheprovider ARGS` from
this checkout with this interpreter and venv, as root. Nothing is installed on the host apart
from qemu-system-x86 when it is missing: the kernel and busybox are taken out of their .deb
files (`apt-get download` + `dpkg-deb -x`) into a cache directory.

    python scripts/vm_test.py [--memory MIB] [--cpus N] [--accel auto|kvm|tcg] -- PYTEST-ARGS

Exit status: pytest's, or 125 when the VM could not run it (boot failure, timeout).
"""

from __future__ import annotations

import argparse
import fcntl
import gzip
import lzma
import os
import select
import shlex
import shutil
import stat
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CACHE = REPO / ".vm-cache"
KERNEL_META_PACKAGE = "linux-image-amd64"
BUSYBOX_PACKAGE = "busybox-static"
QEMU = "qemu-system-x86_64"
QEMU_PACKAGE = "qemu-system-x86"
# What init needs to mount the host's root: virtio PCI transport, 9p over virtio, overlayfs.
# Their dependencies are added from each module's own `depends=` modinfo.
ROOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")
MAX_MEMORY_MIB = 4096
HARNESS_FAILED = 125
EXIT_MARK = "@@oae-vm-exit "
READY_MARK = "@@oae-vm-ready "
KVM_CREATE_VM = 0xAE01


class HarnessError(Exception):
    """The VM could not be prepared or could not run the tests."""


# -- host tools and Debian packages ---------------------------------------------------------


def run(cmd: list[str], cwd: Path | None = None) -> str:
    """Run a host command; its stdout, or HarnessError carrying its stderr."""
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        detail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise HarnessError(f"{' '.join(cmd)} failed ({proc.returncode}): {' / '.join(detail)}")
    return proc.stdout


def apt(cmd: list[str], cwd: Path | None = None) -> str:
    """An apt command, retried once after `apt-get update` (the package lists may be absent)."""
    try:
        return run(cmd, cwd)
    except HarnessError:
        run(["apt-get", "update", "-qq"])
        return run(cmd, cwd)


def ensure_qemu() -> str:
    """Path of qemu-system-x86_64, installing Debian's qemu-system-x86 only when missing."""
    path = shutil.which(QEMU)
    if path:
        return path
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        raise HarnessError(f"{QEMU} is missing; install {QEMU_PACKAGE} (needs root on Debian)")
    log(f"installing {QEMU_PACKAGE}")
    os.environ.setdefault("DEBIAN_FRONTEND", "noninteractive")
    apt(["apt-get", "install", "-y", "-qq", "--no-install-recommends", QEMU_PACKAGE])
    path = shutil.which(QEMU)
    if path is None:
        raise HarnessError(f"{QEMU_PACKAGE} is installed but {QEMU} is not on PATH")
    return path


def extract_package(package: str, into: Path) -> None:
    """`apt-get download` one package and unpack it into `into` (nothing is installed)."""
    with tempfile.TemporaryDirectory(prefix="oae-vm-deb-") as tmp:
        # apt drops privileges to _apt for downloads; the temporary directory must allow it.
        os.chmod(tmp, 0o777)
        apt(["apt-get", "download", "-qq", package], cwd=Path(tmp))
        debs = list(Path(tmp).glob("*.deb"))
        if len(debs) != 1:
            raise HarnessError(f"apt-get download {package} gave {len(debs)} .deb files")
        run(["dpkg-deb", "-x", str(debs[0]), str(into)])


def kernel_package() -> str:
    """The versioned kernel package linux-image-amd64 currently points at."""
    for line in apt(["apt-cache", "depends", KERNEL_META_PACKAGE]).splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if line.strip().startswith("Depends:") and name.startswith("linux-image-"):
            return name
    raise HarnessError(f"apt-cache depends {KERNEL_META_PACKAGE} names no kernel package")


# -- kernel modules -------------------------------------------------------------------------


def read_module(path: Path) -> bytes:
    """A module's ELF bytes, decompressed when Debian ships it compressed."""
    data = path.read_bytes()
    if path.suffix == ".xz":
        return lzma.decompress(data)
    if path.suffix == ".gz":
        return gzip.decompress(data)
    if path.suffix == ".zst":
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


def modinfo(elf: bytes) -> dict[str, str]:
    """The key=value strings of a module's .modinfo section (ELF64 little-endian)."""
    shoff = struct.unpack_from("<Q", elf, 0x28)[0]
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", elf, shoff + index * shentsize
        )
        return name, offset, size

    _, names_offset, _ = section(shstrndx)
    for index in range(shnum):
        name, offset, size = section(index)
        end = elf.index(b"\0", names_offset + name)
        if elf[names_offset + name : end] == b".modinfo":
            fields = elf[offset : offset + size].split(b"\0")
            pairs = (f.decode(errors="replace").partition("=") for f in fields if b"=" in f)
            return {key: value for key, _, value in pairs}
    return {}


def module_name(path: Path) -> str:
    return path.name.split(".ko")[0].replace("-", "_")


def load_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[tuple[str, bytes]]:
    """(name, ELF bytes) of `wanted` and their dependencies, each after what it depends on."""
    files = {module_name(p): p for p in modules_dir.rglob("*.ko*") if ".ko" in p.name}
    ordered: list[tuple[str, bytes]] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise HarnessError(f"module dependency cycle: {' -> '.join((*chain, name))}")
        if name not in files:
            raise HarnessError(f"kernel module {name} is not in {modules_dir}")
        elf = read_module(files[name])
        for dep in filter(None, modinfo(elf).get("depends", "").split(",")):
            visit(dep.replace("-", "_"), (*chain, name))
        done.add(name)
        ordered.append((name, elf))

    for name in wanted:
        visit(name, ())
    return ordered


# -- cache ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kernel:
    """A cached Debian kernel: its bzImage and the modules init loads, in load order."""

    package: str
    vmlinuz: Path
    modules: list[Path]


def fetch_kernel(cache: Path) -> Kernel:
    """The current Debian kernel, extracted once into the cache (reused offline when possible)."""
    try:
        package = kernel_package()
    except HarnessError:
        cached = sorted(cache.glob("kernel/*/ready"), key=lambda p: p.stat().st_mtime)
        if not cached:
            raise
        package = cached[-1].parent.name
    home = cache / "kernel" / package
    stamp = home / "ready"
    if not stamp.exists() or stamp.read_text().split() != list(ROOT_MODULES):
        log(f"fetching {package}")
        shutil.rmtree(home, ignore_errors=True)
        (home / "modules").mkdir(parents=True)
        with tempfile.TemporaryDirectory(prefix="oae-vm-kernel-") as tmp:
            tree = Path(tmp)
            extract_package(package, tree)
            images = sorted(tree.glob("boot/vmlinuz-*"))
            trees = sorted(tree.glob("lib/modules/*/kernel")) + sorted(
                tree.glob("usr/lib/modules/*/kernel")
            )
            if not images or not trees:
                raise HarnessError(f"{package} has no boot/vmlinuz-* or lib/modules/*/kernel")
            shutil.copyfile(images[0], home / "vmlinuz")
            names = []
            for name, elf in load_order(trees[0], ROOT_MODULES):
                (home / "modules" / f"{name}.ko").write_bytes(elf)
                names.append(name)
        (home / "modules.order").write_text("\n".join(names) + "\n")
        stamp.write_text(" ".join(ROOT_MODULES) + "\n")
    order = (home / "modules.order").read_text().split()
    return Kernel(package, home / "vmlinuz", [home / "modules" / f"{n}.ko" for n in order])


def fetch_busybox(cache: Path) -> Path:
    """A static busybox from Debian's busybox-static .deb, extracted once into the cache."""
    path = cache / "busybox"
    if not path.exists():
        log(f"fetching {BUSYBOX_PACKAGE}")
        with tempfile.TemporaryDirectory(prefix="oae-vm-busybox-") as tmp:
            extract_package(BUSYBOX_PACKAGE, Path(tmp))
            found = [
                p for p in (Path(tmp) / "bin/busybox", Path(tmp) / "usr/bin/busybox") if p.exists()
            ]
            if not found:
                raise HarnessError(f"{BUSYBOX_PACKAGE} has no bin/busybox")
            cache.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(found[0], path.with_suffix(".tmp"))
            os.chmod(path.with_suffix(".tmp"), 0o755)
            os.replace(path.with_suffix(".tmp"), path)
    return path


# -- initramfs ------------------------------------------------------------------------------


class Newc:
    """A cpio archive in the kernel's initramfs ("newc") format, device nodes included."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.inode = 0

    def add(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        self.inode += 1
        encoded = name.encode() + b"\0"
        fields = (self.inode, mode, 0, 0, 1, 0, len(data), 0, 0, *rdev, len(encoded), 0)
        self.chunks.append(b"070701" + b"".join(b"%08X" % f for f in fields) + encoded)
        self.pad()
        self.chunks.append(data)
        self.pad()

    def pad(self) -> None:
        self.chunks.append(b"\0" * (-sum(map(len, self.chunks)) % 4))

    def directory(self, name: str) -> None:
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self.add(name, stat.S_IFREG | mode, data)

    def finish(self) -> bytes:
        self.add("TRAILER!!!", 0)
        return b"".join(self.chunks)


# Runs as pid 1 from the initramfs: mounts the host's root (9p, read-only) under a tmpfs
# overlay, gives it proc/sys/dev/tmp/run, runs the command chrooted there with its output on
# the second serial port, reports the exit status on that port and powers off.
INIT = r"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
out=/dev/ttyS1
fail() {{ echo "oae-vm: $*" >$out; echo "{exit_mark}{harness_failed}" >$out; poweroff -f; }}
for m in {modules}; do insmod /modules/$m.ko || fail "insmod $m failed"; done
tries=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=524288,cache=loose hostroot /lower; do
  tries=$((tries + 1)); [ $tries -lt 20 ] || fail "cannot mount the host root over 9p"
  sleep 0.2
done
mount -t tmpfs -o mode=0755 upper /upper
mkdir -p /upper/data /upper/work
mount -t overlay -o lowerdir=/lower,upperdir=/upper/data,workdir=/upper/work root /newroot \
  || fail "cannot mount the overlay on the host root"
r=/newroot
mount -t proc proc $r/proc
mount -t sysfs sysfs $r/sys
mount -t devtmpfs devtmpfs $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts $r/dev/pts
# The checkout may live under /tmp (a CI clone): keep it visible through the tmpfs mounts.
mkdir -p /keep
mount --bind $r{repo} /keep || fail "cannot bind the checkout {repo}"
for d in /tmp /run /dev/shm; do mount -t tmpfs -o mode=1777 tmpfs $r$d; done
chmod 0755 $r/run
mkdir -p $r{repo}
mount --move /keep $r{repo} || fail "cannot move the checkout back to {repo}"
ip link set lo up
hostname oae-vm
cp /command.sh $r/run/oae-vm-command.sh
read up _ </proc/uptime
echo "{ready_mark}$up" >$out
chroot $r /bin/sh /run/oae-vm-command.sh </dev/null >$out 2>&1
echo "{exit_mark}$?" >$out
sync
poweroff -f
"""

COMMAND = """cd {cwd}
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
export LANG=C.UTF-8 TERM=dumb PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
exec {command}
"""


def build_initramfs(busybox: Path, kernel: Kernel, command: list[str]) -> bytes:
    archive = Newc()
    for name in ("bin", "dev", "proc", "sys", "lower", "upper", "newroot", "modules", "keep"):
        archive.directory(name)
    archive.add("dev/console", stat.S_IFCHR | 0o600, rdev=(5, 1))
    archive.file("bin/busybox", busybox.read_bytes(), 0o755)
    for module in kernel.modules:
        archive.file(f"modules/{module.name}", module.read_bytes())
    init = INIT.format(
        modules=" ".join(m.stem for m in kernel.modules),
        exit_mark=EXIT_MARK,
        repo=shlex.quote(str(REPO)),
        ready_mark=READY_MARK,
        harness_failed=HARNESS_FAILED,
    )
    archive.file("init", init.encode(), 0o755)
    script = COMMAND.format(cwd=shlex.quote(str(REPO)), command=shlex.join(command))
    archive.file("command.sh", script.encode())
    return archive.finish()


# -- boot -----------------------------------------------------------------------------------


def kvm_usable() -> bool:
    """True when /dev/kvm opens and creates a VM (nested virtualisation may be off)."""
    try:
        fd = os.open("/dev/kvm", os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        os.close(fcntl.ioctl(fd, KVM_CREATE_VM, 0))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def qemu_command(
    qemu: str, kernel: Kernel, initrd: Path, console: Path, accel: str, memory: int, cpus: int
) -> list[str]:
    append = "console=ttyS0 loglevel=4 audit=1 panic=-1 8250.nr_uarts=2 mitigations=off"
    return [
        qemu,
        *("-nodefaults", "-no-user-config", "-no-reboot", "-display", "none"),
        *("-machine", "q35", "-accel", accel, "-cpu", "host" if accel == "kvm" else "max"),
        *("-smp", str(cpus), "-m", str(memory)),
        *("-kernel", str(kernel.vmlinuz), "-initrd", str(initrd), "-append", append),
        *("-serial", f"file:{console}", "-serial", "stdio"),
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    ]


class NotReady(HarnessError):
    """The guest did not reach its test command in time (a hanging or crawling accelerator)."""


def stream(proc: subprocess.Popen[bytes], ready_by: float, deadline: float) -> int | None:
    """Echo the VM's test output as it arrives; the exit status it reports, or None."""
    assert proc.stdout is not None
    started = time.monotonic()
    status: int | None = None
    ready = False
    pending = b""
    fd = proc.stdout.fileno()
    while True:
        now = time.monotonic()
        if not ready and now >= ready_by:
            raise NotReady(f"the VM did not reach its test command within {now - started:.0f}s")
        if now >= deadline:
            raise HarnessError(f"timed out after {now - started:.0f}s")
        readable, _, _ = select.select([fd], [], [], min(deadline - now, 1.0))
        if not readable:
            continue
        chunk = os.read(fd, 65536)
        if not chunk:
            if not ready:
                raise NotReady("qemu stopped before the VM reached its test command")
            return status
        pending += chunk.replace(b"\r", b"")
        *lines, pending = pending.split(b"\n")
        for raw in lines:
            line = raw.decode(errors="replace")
            if line.startswith(EXIT_MARK):
                status = int(line[len(EXIT_MARK) :].strip())
            elif line.startswith(READY_MARK):
                ready = True
                uptime = line[len(READY_MARK) :].strip()
                log(f"VM up after {time.monotonic() - started:.1f}s (guest uptime {uptime}s)")
            else:
                print(line, flush=True)


def run_vm(cmd: list[str], ready_timeout: float, timeout: float) -> tuple[int | None, str]:
    """Boot qemu and stream its output: (exit status the guest reported or None, why not)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    status: int | None = None
    problem = ""
    try:
        status = stream(proc, started + ready_timeout, started + timeout)
        proc.wait(timeout=30)
    except NotReady:
        raise
    except (HarnessError, subprocess.TimeoutExpired) as exc:
        problem = str(exc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log(f"VM ran {time.monotonic() - started:.1f}s; qemu exit status {proc.returncode}")
    return status, problem


def choose_accel(requested: str, verdict: Path) -> str:
    """KVM when asked for, or when usable and not already found to hang here; else TCG."""
    if requested != "auto":
        return requested
    if not kvm_usable():
        return "tcg"
    if verdict.exists() and verdict.read_text().strip() == "tcg":
        return "tcg"
    return "kvm"


def boot(command: list[str], args: argparse.Namespace) -> int:
    qemu = ensure_qemu()
    cache = args.cache.resolve()
    kernel = fetch_kernel(cache)
    busybox = fetch_busybox(cache)
    # Nested KVM can open and create VMs yet crawl (seen: minutes stuck in the decompressor);
    # remember per host kernel that it did not reach the command, and use TCG from then on.
    verdict = cache / f"accel-{os.uname().release}"
    accel = choose_accel(args.accel, verdict)
    workdir = Path(tempfile.mkdtemp(prefix="oae-vm-run-"))
    initrd = workdir / "initramfs.cpio"
    console = workdir / "console.log"
    initrd.write_bytes(build_initramfs(busybox, kernel, command))
    while True:
        cmd = qemu_command(qemu, kernel, initrd, console, accel, args.memory, args.cpus)
        log(f"booting {kernel.package} ({accel}, {args.cpus} vCPUs, {args.memory} MiB)")
        log(f"running {shlex.join(command)}")
        try:
            status, problem = run_vm(cmd, args.boot_timeout, args.timeout)
            break
        except NotReady as exc:
            if args.accel != "auto" or accel == "tcg":
                status, problem = None, str(exc)
                break
            log(f"{exc} with KVM: falling back to TCG (remembered in {verdict})")
            verdict.write_text("tcg\n")
            accel = "tcg"
    if args.accel == "auto" and accel == "kvm" and status is not None:
        verdict.write_text("kvm\n")
    if status is None or status == HARNESS_FAILED:
        log(problem or "the VM did not report a test exit status")
        tail = console.read_text(errors="replace").splitlines()[-40:] if console.exists() else []
        log("last console lines:")
        for line in tail:
            print(f"  | {line}", file=sys.stderr)
        log(f"initramfs and console log kept in {workdir}")
        return HARNESS_FAILED
    if args.keep:
        log(f"initramfs and console log kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


def log(message: str) -> None:
    print(f"vm_test: {message}", file=sys.stderr, flush=True)


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """Harness options, then the pytest arguments (everything after `--`)."""
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        usage="%(prog)s [options] -- [pytest args]",
        allow_abbrev=False,
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(os.environ.get("OAE_VM_CACHE", DEFAULT_CACHE))
    )
    parser.add_argument("--memory", type=int, default=2048, help="MiB (at most 4096)")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds for the whole run")
    parser.add_argument(
        "--boot-timeout", type=float, default=90.0, help="seconds to reach the test command"
    )
    parser.add_argument("--keep", action="store_true", help="keep the initramfs and console log")
    parser.add_argument(
        "--python", default=sys.executable, help="interpreter running pytest in the VM"
    )
    parser.add_argument(
        "--shell", metavar="COMMAND", help="run this sh command in the VM instead of pytest"
    )
    parser.add_argument("pytest_args", nargs="*", help="test paths (put options after --)")
    ours, theirs = argv, []
    if "--" in argv:
        at = argv.index("--")
        ours, theirs = argv[:at], argv[at + 1 :]
    args = parser.parse_args(ours)
    if not 128 <= args.memory <= MAX_MEMORY_MIB:
        parser.error(f"--memory must be between 128 and {MAX_MEMORY_MIB} MiB")
    if args.cpus < 1:
        parser.error("--cpus must be at least 1")
    return args, [*args.pytest_args, *theirs]


def main(argv: list[str] | None = None) -> int:
    args, pytest_args = parse_args(sys.argv[1:] if argv is None else argv)
    command = [args.python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *pytest_args]
    if args.shell is not None:
        command = ["/bin/sh", "-c", args.shell]
    try:
        return boot(command, args)
    except HarnessError as exc:
        log(str(exc))
        return HARNESS_FAILED


if __name__ == "__main__":
    sys.exit(main())
