"""Confining an untrusted agent's process with what the operating system enforces, not Python.

``confine(policy, parent)`` runs first thing in the agent's process (``server.play.agent_host``), while
that process has a single thread and before any agent code is imported. Each protection is applied
where the kernel allows it; what it cannot apply comes back as one line each, which the parent names
once on stderr (``IsolatedAgent``). On Linux, in this order:

| protection | how | an agent that tries gets |
| --- | --- | --- |
| dies with its parent | ``PR_SET_PDEATHSIG`` (SIGKILL) | — |
| no network | a network namespace of its own (``unshare(CLONE_NEWNET)``, through a user namespace when not root), and seccomp: ``socket()`` only for ``AF_UNIX``, no io_uring | ``PermissionError`` from ``socket.socket()`` |
| a bounded scratch folder | a tmpfs of ``scratch_mb`` MiB on it, in a mount namespace of its own | ``OSError`` (no space) |
| files | landlock: read the Python installation, ``sys.path``, system libraries and the agent's own folder; write the scratch folder only; no signals to processes outside | ``PermissionError`` |
| no capabilities | every capability dropped (bounding set too) and ``no_new_privs`` | — |
| limits | rlimits: address space (``MemoryError``), open files, CPU seconds, file size, no core files | — |
| no processes | seccomp: fork, vfork, ``clone`` without ``CLONE_THREAD`` and exec fail (threads still work); no ptrace, no ``kill`` but of itself, no mounts, modules, reboot, keyrings, bpf, ... | ``PermissionError`` |

The parent (``server.play.isolated``) adds what needs an outside view: its own process group and
session, a minimal environment, stdout/stderr into a capped log file, deadlines, and the CPU budget.

Run ``python -m server.play.sandbox`` to see what this machine gives.
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import re
import shutil
import struct
import sys
from dataclasses import asdict, dataclass, field

#: the address-space limit of an agent's process unless ``--agent-memory`` says otherwise
DEFAULT_MEMORY = 2 << 30
#: system folders an agent may read (shared libraries, the dynamic loader's cache, CPU facts numba asks)
SYSTEM_READ = ("/usr", "/lib", "/lib64", "/lib32", "/bin", "/etc/ld.so.cache", "/etc/ld.so.conf",
               "/etc/ld.so.conf.d", "/etc/localtime", "/proc/cpuinfo", "/proc/meminfo", "/proc/stat",
               "/sys/devices/system/cpu", "/sys/fs/cgroup", "/dev/urandom", "/dev/random", "/dev/zero")

_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """``2G``, ``512M``, ``1.5GiB``, ``1048576`` -> bytes (binary units)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)i?b?\s*", str(text).lower())
    if not m or not float(m[1]) > 0:
        raise ValueError(f"{text!r} is not a size (e.g. 2G, 512M)")
    return int(float(m[1]) * _SIZE_UNITS[m[2]])


@dataclass
class Policy:
    """What an agent's process may do. Travels to the process as JSON on its command line."""

    scratch: str                       #: the one folder it may write (its HOME and TMPDIR)
    read: list[str] = field(default_factory=list)   #: folders it may read besides the Python installation
    memory: int = DEFAULT_MEMORY       #: address space, bytes (RLIMIT_AS)
    cpu_seconds: int = 24 * 3600       #: CPU time, seconds (RLIMIT_CPU): a backstop; the parent's budget acts first
    open_files: int = 256              #: RLIMIT_NOFILE
    file_size: int = 256 << 20         #: the largest file it may write, bytes (RLIMIT_FSIZE)
    scratch_mb: int = 256              #: the size of the scratch tmpfs where one can be mounted

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "Policy":
        return cls(**json.loads(text))


def _stat_cpu(path: str) -> float:
    with open(path, "rb") as fh:
        fields = fh.read().rpartition(b")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, dict[int, float]] | None:
    """``(CPU seconds of the process, {thread id: its CPU seconds})``, user + system, from /proc; the
    process figure includes threads that have ended. None where there is no /proc (or no such process)."""
    try:
        total = _stat_cpu(f"/proc/{pid}/stat")
        threads = {}
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                threads[int(tid)] = _stat_cpu(f"/proc/{pid}/task/{tid}/stat")
            except (OSError, ValueError, IndexError):
                pass   # the thread ended meanwhile
        return total, threads
    except (OSError, ValueError, IndexError):
        return None


# -- the kernel interfaces (Linux) -------------------------------------------------------------------
_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine().lower())

# syscall numbers, from <asm/unistd_64.h> (x86_64) and <asm-generic/unistd.h> (aarch64)
_NR = {
    "x86_64": dict(socket=41, socketpair=53, clone=56, fork=57, vfork=58, execve=59, kill=62, ptrace=101,
                   syslog=103, setpgid=109, setsid=112, rt_sigqueueinfo=129, mknod=133, pivot_root=155,
                   prctl=157, adjtimex=159, chroot=161, acct=163, settimeofday=164, mount=165, umount2=166,
                   swapon=167, swapoff=168, reboot=169, sethostname=170, setdomainname=171, iopl=172,
                   ioperm=173, init_module=175, delete_module=176, quotactl=179, tkill=200, clock_settime=227,
                   tgkill=234, kexec_load=246, add_key=248, request_key=249, keyctl=250, mknodat=259,
                   unshare=272, rt_tgsigqueueinfo=297, perf_event_open=298, fanotify_init=300,
                   name_to_handle_at=303, open_by_handle_at=304, clock_adjtime=305, setns=308,
                   process_vm_readv=310, process_vm_writev=311, finit_module=313, seccomp=317,
                   kexec_file_load=320, bpf=321, execveat=322, userfaultfd=323, pidfd_send_signal=424,
                   io_uring_setup=425, io_uring_enter=426, io_uring_register=427, open_tree=428,
                   move_mount=429, fsopen=430, fsconfig=431, fsmount=432, fspick=433, pidfd_open=434,
                   clone3=435, pidfd_getfd=438, mount_setattr=442, landlock_create_ruleset=444,
                   landlock_add_rule=445, landlock_restrict_self=446),
    "aarch64": dict(mknodat=33, umount2=39, mount=40, pivot_root=41, chroot=51, quotactl=60, acct=89,
                    unshare=97, kexec_load=104, init_module=105, delete_module=106, clock_settime=112,
                    syslog=116, ptrace=117, kill=129, tkill=130, tgkill=131, rt_sigqueueinfo=138,
                    reboot=142, setpgid=154, setsid=157, sethostname=161, setdomainname=162, prctl=167,
                    settimeofday=170, adjtimex=171, socket=198, socketpair=199, add_key=217,
                    request_key=218, keyctl=219, clone=220, execve=221, swapon=224, swapoff=225,
                    rt_tgsigqueueinfo=240, perf_event_open=241, fanotify_init=262, name_to_handle_at=264,
                    open_by_handle_at=265, clock_adjtime=266, setns=268, process_vm_readv=270,
                    process_vm_writev=271, finit_module=273, seccomp=277, bpf=280, execveat=281,
                    userfaultfd=282, kexec_file_load=294, pidfd_send_signal=424, io_uring_setup=425,
                    io_uring_enter=426, io_uring_register=427, open_tree=428, move_mount=429, fsopen=430,
                    fsconfig=431, fsmount=432, fspick=433, pidfd_open=434, clone3=435, pidfd_getfd=438,
                    mount_setattr=442, landlock_create_ruleset=444, landlock_add_rule=445,
                    landlock_restrict_self=446),
}
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET, CLONE_THREAD = 0x00020000, 0x10000000, 0x40000000, 0x00010000
MS_REC, MS_PRIVATE, MS_NOSUID, MS_NODEV = 0x4000, 1 << 18, 2, 4
PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 38, 24, 47, 4
AF_UNIX = 1

# seccomp (linux/seccomp.h, linux/filter.h)
SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC = 1, 1
SECCOMP_RET_KILL_PROCESS, SECCOMP_RET_ERRNO, SECCOMP_RET_ALLOW = 0x80000000, 0x00050000, 0x7FFF0000
_LD_W_ABS, _JEQ, _JGE, _JSET, _RET = 0x20, 0x15, 0x35, 0x45, 0x06
EPERM, ENOSYS = 1, 38

# landlock (linux/landlock.h): rights by ABI version
LL_EXECUTE, LL_WRITE_FILE, LL_READ_FILE, LL_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
LL_FS_V1 = (1 << 13) - 1        # execute .. make_sym
LL_REFER, LL_TRUNCATE, LL_IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
LL_NET_BIND_TCP, LL_NET_CONNECT_TCP = 1, 2
LL_SCOPE_ABSTRACT_UNIX_SOCKET, LL_SCOPE_SIGNAL = 1, 2
LANDLOCK_RULE_PATH_BENEATH = 1
_LL_FILE_RIGHTS = LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE | LL_IOCTL_DEV


class _Libc:
    def __init__(self):
        self.c = ctypes.CDLL(None, use_errno=True)
        self.c.syscall.restype = ctypes.c_long

    def call(self, name: str, *args) -> int:
        fn = getattr(self.c, name)
        r = fn(*args)
        if r == -1:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return r

    def syscall(self, name: str, *args) -> int:
        nr = _NR[_ARCH][name]
        r = self.c.syscall(ctypes.c_long(nr), *args)
        if r == -1:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        return r


def landlock_abi() -> int:
    """The landlock ABI version this kernel offers (0: none)."""
    if not sys.platform.startswith("linux") or _ARCH is None:
        return 0
    try:
        return _Libc().syscall("landlock_create_ruleset", None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    except OSError:
        return 0


# -- the steps -----------------------------------------------------------------------------------------
def _set_rlimits(policy: Policy) -> list[str]:
    import resource

    missing = []
    wanted = [("address space", resource.RLIMIT_AS, policy.memory),
              ("open files", resource.RLIMIT_NOFILE, policy.open_files),
              ("CPU time", resource.RLIMIT_CPU, policy.cpu_seconds),
              ("file size", resource.RLIMIT_FSIZE, policy.file_size),
              ("core files", resource.RLIMIT_CORE, 0)]
    for what, res, value in wanted:
        try:
            soft, hard = resource.getrlimit(res)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(res, (value, value))
        except (ValueError, OSError) as exc:
            missing.append(f"a limit on {what} ({exc})")
    return missing


def _unshare(libc: _Libc, policy: Policy) -> tuple[list[str], bool]:
    """A network namespace (no interface but a loopback that is down) and a mount namespace with a tmpfs
    on the scratch folder and one on /dev/shm (numba's semaphores live there; the real one is shared
    with every other process). As root directly; otherwise through a user namespace of our own.
    Returns the missing protections and whether /dev/shm is private."""
    flags = CLONE_NEWNET | CLONE_NEWNS
    try:
        libc.call("unshare", flags)
    except OSError:
        try:
            uid, gid = os.getuid(), os.getgid()
            libc.call("unshare", flags | CLONE_NEWUSER)
            for path, text in (("/proc/self/setgroups", "deny"), ("/proc/self/uid_map", f"{uid} {uid} 1"),
                               ("/proc/self/gid_map", f"{gid} {gid} 1")):
                with open(path, "w") as fh:
                    fh.write(text)
        except OSError as exc:
            return [f"a network namespace of its own (unshare: {exc.strerror}; user namespaces may be "
                    f"disabled): only seccomp keeps it off the network"], False
    try:
        libc.call("mount", None, b"/", None, ctypes.c_ulong(MS_REC | MS_PRIVATE), None)
        libc.call("mount", b"tmpfs", policy.scratch.encode(), b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV),
                  f"size={int(policy.scratch_mb)}m,mode=0700".encode())
    except OSError as exc:
        return [f"a size limit on its scratch folder (mount tmpfs: {exc.strerror})"], False
    try:
        libc.call("mount", b"tmpfs", b"/dev/shm", b"tmpfs", ctypes.c_ulong(MS_NOSUID | MS_NODEV), b"size=16m,mode=1777")
    except OSError:
        return [], False
    return [], True


def _landlock(libc: _Libc, policy: Policy, read: list[str], shm: bool) -> list[str]:
    abi = landlock_abi()
    if abi < 1:
        return ["file access control (landlock is not available on this kernel): it can read and write "
                "whatever you can"]
    fs = LL_FS_V1 | (LL_REFER if abi >= 2 else 0) | (LL_TRUNCATE if abi >= 3 else 0) | \
        (LL_IOCTL_DEV if abi >= 5 else 0)
    net = (LL_NET_BIND_TCP | LL_NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (LL_SCOPE_ABSTRACT_UNIX_SOCKET | LL_SCOPE_SIGNAL) if abi >= 6 else 0
    attr = struct.pack("=QQQ", fs, net, scoped)[: 8 if abi < 4 else 16 if abi < 6 else 24]
    buf = ctypes.create_string_buffer(attr, len(attr))
    ruleset = libc.syscall("landlock_create_ruleset", buf, ctypes.c_size_t(len(attr)), ctypes.c_uint32(0))
    readonly = LL_EXECUTE | LL_READ_FILE | LL_READ_DIR

    def allow(path: str, rights: int) -> None:
        try:
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            return   # not on this machine: nothing to allow
        try:
            if not os.path.isdir(path):
                rights &= _LL_FILE_RIGHTS
            rule = ctypes.create_string_buffer(struct.pack("=Qi", rights & fs, fd), 12)
            libc.syscall("landlock_add_rule", ctypes.c_int(ruleset), ctypes.c_int(LANDLOCK_RULE_PATH_BENEATH),
                         rule, ctypes.c_uint32(0))
        finally:
            os.close(fd)

    try:
        for path in read:
            allow(path, readonly)
        allow("/dev/null", LL_READ_FILE | LL_WRITE_FILE)
        allow(f"/proc/{os.getpid()}", LL_READ_FILE | LL_READ_DIR)
        allow(policy.scratch, fs)
        if shm:
            allow("/dev/shm", fs)
        libc.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.syscall("landlock_restrict_self", ctypes.c_int(ruleset), ctypes.c_uint32(0))
    finally:
        os.close(ruleset)
    return [] if abi >= 6 else ["a scope on its signals and abstract sockets (kernel < 6.12): seccomp "
                                "alone keeps it from signalling other processes"]


def _drop_capabilities(libc: _Libc) -> list[str]:
    try:
        last = int(open("/proc/sys/kernel/cap_last_cap").read())
    except (OSError, ValueError):
        last = 40
    try:
        libc.call("prctl", PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    except OSError:
        pass
    for cap in range(last + 1):
        try:
            libc.call("prctl", PR_CAPBSET_DROP, cap, 0, 0, 0)
        except OSError:
            break   # not permitted: we hold no CAP_SETPCAP, so nothing to drop from the bounding set
    header = ctypes.create_string_buffer(struct.pack("=Ii", 0x20080522, 0), 8)   # _LINUX_CAPABILITY_VERSION_3
    data = ctypes.create_string_buffer(24)                                           # two empty cap sets
    try:
        libc.call("capset", header, data)
    except OSError as exc:
        return [f"dropping capabilities (capset: {exc.strerror})"]
    return []


def seccomp_filter(arch: str, pid: int) -> list[tuple[int, int, int, int]]:
    """The BPF program: ``(code, jt, jf, k)`` instructions. Denied calls fail with EPERM (clone3 with
    ENOSYS, so the C library falls back to ``clone``, whose flags a filter can read)."""
    nr = _NR[arch]
    deny = ["fork", "vfork", "execve", "execveat", "ptrace", "process_vm_readv", "process_vm_writev", "tkill",
            "pidfd_open", "pidfd_send_signal", "pidfd_getfd", "setsid", "setpgid", "unshare", "setns", "mount",
            "umount2", "pivot_root", "chroot", "reboot", "kexec_load", "kexec_file_load", "init_module",
            "finit_module", "delete_module", "bpf", "perf_event_open", "keyctl", "add_key", "request_key",
            "swapon", "swapoff", "syslog", "acct", "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
            "sethostname", "setdomainname", "iopl", "ioperm", "quotactl", "mknod", "mknodat",
            "open_by_handle_at", "name_to_handle_at", "userfaultfd", "fanotify_init", "io_uring_setup",
            "io_uring_enter", "io_uring_register", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount",
            "fspick", "mount_setattr"]
    arg0 = 16   # offsetof(struct seccomp_data, args[0]), its low 32 bits on a little-endian machine
    allow, eperm = (_RET, 0, 0, SECCOMP_RET_ALLOW), (_RET, 0, 0, SECCOMP_RET_ERRNO | EPERM)
    prog = [(_LD_W_ABS, 0, 0, 4), (_JEQ, 1, 0, _AUDIT_ARCH[arch]), (_RET, 0, 0, SECCOMP_RET_KILL_PROCESS),
            (_LD_W_ABS, 0, 0, 0)]
    if arch == "x86_64":   # the x32 ABI's numbers would dodge every check below
        prog += [(_JGE, 0, 1, 0x40000000), eperm]
    for name in deny:
        if name in nr:
            prog += [(_JEQ, 0, 1, nr[name]), eperm]
    prog += [(_JEQ, 0, 1, nr["clone3"]), (_RET, 0, 0, SECCOMP_RET_ERRNO | ENOSYS)]

    def on_arg0(name: str, body: list) -> None:   # if nr == name: load args[0] and run body (it returns)
        prog.extend([(_JEQ, 0, len(body) + 1, nr[name]), (_LD_W_ABS, 0, 0, arg0)] + body)

    on_arg0("clone", [(_JSET, 0, 1, CLONE_THREAD), allow, eperm])          # threads yes, processes no
    on_arg0("socket", [(_JEQ, 0, 1, AF_UNIX), allow, eperm])                # unix sockets only
    on_arg0("socketpair", [(_JEQ, 0, 1, AF_UNIX), allow, eperm])
    on_arg0("kill", [(_JEQ, 1, 0, pid), (_JEQ, 0, 1, 0), allow, eperm])    # itself (or its own group)
    on_arg0("rt_sigqueueinfo", [(_JEQ, 0, 1, pid), allow, eperm])
    on_arg0("tgkill", [(_JEQ, 0, 1, pid), allow, eperm])                    # its own threads
    on_arg0("rt_tgsigqueueinfo", [(_JEQ, 0, 1, pid), allow, eperm])
    on_arg0("prctl", [(_JEQ, 0, 1, 1), eperm, allow])                       # PR_SET_PDEATHSIG stays
    prog.append(allow)
    return prog


def _seccomp(libc: _Libc) -> list[str]:
    prog = seccomp_filter(_ARCH, os.getpid())
    raw = b"".join(struct.pack("=HBBI", *ins) for ins in prog)
    filt = ctypes.create_string_buffer(raw, len(raw))
    fprog = ctypes.create_string_buffer(struct.pack("=HxxxxxxQ", len(prog), ctypes.addressof(filt)), 16)
    try:
        libc.call("prctl", PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        libc.syscall("seccomp", ctypes.c_uint(SECCOMP_SET_MODE_FILTER), ctypes.c_uint(SECCOMP_FILTER_FLAG_TSYNC), fprog)
    except OSError as exc:
        return [f"seccomp (it can start processes and open network sockets: {exc.strerror})"]
    return []


def python_paths() -> list[str]:
    """Where this Python and its packages live: what an agent's process must read to import anything."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))}
    paths.update(p for p in sys.path if p and os.path.isabs(p))
    out = set()
    for p in paths:
        out.add(p)
        out.add(os.path.realpath(p))
    return sorted(p for p in out if os.path.exists(p))


def confine(policy: Policy, parent: int) -> list[str]:
    """Apply ``policy`` to this process (see the module docstring); returns what could not be applied.
    Call it while the process has one thread: namespaces and landlock bind only the calling thread."""
    from server.net.proc import die_with_parent

    if not sys.platform.startswith("linux"):
        return [f"confinement on {sys.platform} (only Linux is supported): it runs with your rights and "
                f"only deadlines, a log file and a minimal environment"]
    if _ARCH is None:
        return [f"confinement on a {platform.machine()} CPU (x86_64 and aarch64 only): it runs with your rights"]
    missing = []
    if not die_with_parent(parent):
        missing.append("dying with its parent (PR_SET_PDEATHSIG)")
    if len(os.listdir(f"/proc/{os.getpid()}/task")) != 1:
        raise RuntimeError("confine() must run before the process starts a thread")
    libc = _Libc()
    lost, shm = _unshare(libc, policy)
    missing += lost
    read = sorted(set(python_paths()) | set(SYSTEM_READ) | set(policy.read))
    missing += _landlock(libc, policy, read, shm=shm)
    missing += _drop_capabilities(libc)
    missing += _set_rlimits(policy)
    missing += _seccomp(libc)
    return missing


def use_numba_cache(folder: str) -> None:
    """Let numba use the caches beside sources this process may only read (ours, site-packages, the
    agent's folder): each source's cache files are copied into ``folder`` the first time one of its
    functions is compiled, and new ones are written there. Without this numba would compile every
    kernel afresh in every agent process (seconds each). Only speed depends on it: with another numba
    it does nothing."""
    try:
        from numba.core import caching
        base = (caching._SourceFileBackedLocatorMixin, caching._CacheLocator)
        impl = getattr(caching, "CacheImpl", None) or caching._CacheImpl   # numba >= 0.61 / before
    except (ImportError, AttributeError):
        return
    copied: set[str] = set()

    class MirrorLocator(*base):
        def __init__(self, py_func, py_file):
            self._py_file, self._lineno = py_file, py_func.__code__.co_firstlineno
            self._cache_path = os.path.join(folder, self.get_suitable_cache_subpath(py_file))

        def get_cache_path(self):
            return self._cache_path

        @classmethod
        def from_function(cls, py_func, py_file):
            if not os.path.isfile(py_file):
                return None
            self = cls(py_func, py_file)
            try:
                self.ensure_cache_path()
                if py_file not in copied:
                    copied.add(py_file)
                    tree = os.path.join(os.path.dirname(py_file), "__pycache__")
                    stem = os.path.splitext(os.path.basename(py_file))[0] + "."
                    for name in (os.listdir(tree) if os.path.isdir(tree) else []):
                        if name.startswith(stem) and name.endswith((".nbi", ".nbc")):
                            shutil.copyfile(os.path.join(tree, name), os.path.join(self._cache_path, name))
            except OSError:
                return None
            return self

    impl._locator_classes = [MirrorLocator] + [c for c in impl._locator_classes if c.__name__ != "MirrorLocator"]


def report() -> list[str]:
    """What this machine cannot give, found by confining a throw-away child process: one line each."""
    import subprocess
    import tempfile

    from server.net.proc import child_env

    with tempfile.TemporaryDirectory(prefix="arena-probe-") as tmp:
        code = ("import json, os; from server.play.sandbox import Policy, confine; "
                f"print(json.dumps(confine(Policy(scratch={tmp!r}), os.getppid())))")
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp, env=child_env())
    if p.returncode != 0:
        return [f"confinement (trying it failed: {(p.stderr.strip().splitlines() or ['?'])[-1]})"]
    return json.loads(p.stdout)


if __name__ == "__main__":
    missing = report()
    print("isolated agents are confined with every protection" if not missing else
          "isolated agents run without:\n" + "\n".join(f"  - {m}" for m in missing))
