#!/usr/bin/python3
"""Run a command under the [Service] sandbox of a systemd unit, without systemd as PID 1
(tests/units.sh; in containers `systemd-run` cannot start anything).

    unit_sandbox.py UNIT [--user UID:GID] -- CMD [ARG...]

Every setting of UNIT's [Service] section is looked up in SETTINGS: it is either emulated
here (mount namespace, setpriv, a seccomp filter built with libseccomp), or named as not
emulated with the reason, or ignored as not a restriction (Type=, ExecStart=, ...). A
setting this script does not know is an error (exit 3): a new hardening line in the unit
must come with its emulation, or with a reason why it has none.

--user overrides User=/Group= (the test machine has no user snoopcast; any unprivileged
uid is the same to the kernel). Run as root. Exit status: CMD's, or 3 for a sandbox error.

Stages: (1) as root, re-exec under `unshare --mount --propagation private` (+ --ipc for
PrivateIPC=, --uts for ProtectHostname=); (2) in the new mount namespace: mounts, umask,
then exec `setpriv` (User=, Group=, AmbientCapabilities=, CapabilityBoundingSet=,
NoNewPrivileges=), which execs (3) this script again to load the seccomp filter
(SystemCallFilter=, SystemCallErrorNumber=, RestrictAddressFamilies=, MemoryDenyWriteExecute=,
RestrictNamespaces=, RestrictRealtime=, RestrictSUIDSGID=, LockPersonality=,
SystemCallArchitectures=native) and exec CMD under it, as systemd does just before exec.
"""

import errno
import os
import pwd
import grp
import socket
import subprocess
import sys
import tempfile

# How each [Service] setting is handled: "emulated", or a string saying why not, or None for
# settings that restrict nothing (the test drives the command line and the signals itself).
SETTINGS = {
    "Type": None, "WatchdogSec": None, "ExecStart": None, "ExecReload": None,
    "KillSignal": None, "Restart": None, "RestartSec": None, "RestartPreventExitStatus": None,
    "User": "emulated", "Group": "emulated",
    "AmbientCapabilities": "emulated", "CapabilityBoundingSet": "emulated",
    "NoNewPrivileges": "emulated",
    "RuntimeDirectory": "emulated", "RuntimeDirectoryMode": "emulated",
    "RuntimeDirectoryPreserve": "not emulated: only matters when the unit stops",
    "LogsDirectory": "emulated", "UMask": "emulated",
    "ProtectSystem": "emulated", "ProtectHome": "emulated", "PrivateTmp": "emulated",
    "PrivateDevices": "emulated", "DevicePolicy": "emulated (PrivateDevices: no other nodes)",
    "PrivateIPC": "emulated", "PrivateMounts": "emulated",
    "ProtectHostname": "emulated", "ProtectClock": "emulated (@clock not allowed)",
    "ProtectKernelTunables": "emulated", "ProtectKernelModules": "emulated",
    "ProtectKernelLogs": "emulated", "ProtectControlGroups": "emulated",
    "ProtectProc": "not emulated: hidepid needs a new proc mount and PID namespace; "
                   "snoopcast reads only /proc/self and /proc/sys",
    "RestrictAddressFamilies": "emulated", "RestrictNamespaces": "emulated",
    "RestrictRealtime": "emulated", "RestrictSUIDSGID": "emulated (chmod family)",
    "LockPersonality": "emulated", "MemoryDenyWriteExecute": "emulated",
    "RemoveIPC": "not emulated: only matters when the unit stops",
    "SystemCallArchitectures": "emulated", "SystemCallFilter": "emulated",
    "SystemCallErrorNumber": "emulated",
}

SECCOMP_SETTINGS = ("SystemCallFilter", "SystemCallErrorNumber", "RestrictAddressFamilies",
                    "MemoryDenyWriteExecute", "RestrictNamespaces", "RestrictRealtime",
                    "RestrictSUIDSGID", "LockPersonality", "SystemCallArchitectures",
                    "ProtectClock")

CAPS = {"CAP_NET_RAW": "net_raw", "CAP_NET_ADMIN": "net_admin", "CAP_SYS_NICE": "sys_nice"}


def die(msg):
    print(f"unit_sandbox: {msg}", file=sys.stderr)
    sys.exit(3)


def parse_unit(path):
    """[Service] settings: name -> list of values (a repeated setting accumulates)."""
    out, section = {}, None
    with open(path) as f:
        for raw in f:
            line = raw.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = line
                continue
            if section == "[Service]":
                k, _, v = line.partition("=")
                out.setdefault(k.strip(), []).append(v.strip())
    return out


def yes(svc, key):
    return svc.get(key, ["no"])[-1] in ("yes", "true", "1", "on")


def run(*cmd):
    subprocess.run(cmd, check=True)


def mountpoints():
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f]


def bind_ro(path, recursive=True):
    """Read-only path and every mount below it."""
    if not os.path.exists(path):
        return
    run("mount", "--rbind" if recursive else "--bind", path, path)
    for mp in mountpoints():
        if mp == path or mp.startswith(path.rstrip("/") + "/"):
            run("mount", "-o", "remount,bind,ro", mp)


def stage_mounts(svc, uid, gid, argv_rest):
    strict = svc.get("ProtectSystem", ["no"])[-1] == "strict"
    rw_dirs = []
    for key, base in (("RuntimeDirectory", "/run"), ("LogsDirectory", "/var/log")):
        for names in svc.get(key, []):
            for name in names.split():
                d = os.path.join(base, name)
                os.makedirs(d, exist_ok=True)
                os.chown(d, uid, gid)
                mode = svc.get(key + "Mode", ["0755"])[-1] if key == "RuntimeDirectory" else "0755"
                os.chmod(d, int(mode, 8))
                rw_dirs.append(d)
    if yes(svc, "PrivateDevices"):
        # A /dev with null, zero, full, random, urandom, tty and shm only (no kmsg, no
        # disks), built in a scratch directory first (before anything is read-only).
        stash = tempfile.mkdtemp(prefix=".unit-sandbox-dev.", dir="/run")
        run("mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", stash)
        for n in ("null", "zero", "full", "random", "urandom", "tty"):
            open(os.path.join(stash, n), "w").close()
            run("mount", "--bind", "/dev/" + n, os.path.join(stash, n))
        os.makedirs(stash + "/shm")
        os.chmod(stash + "/shm", 0o1777)
        run("mount", "--move", stash, "/dev")
        run("mount", "-o", "remount,nosuid,noexec", "/dev")
        os.rmdir(stash)
    if strict:
        # Everything read-only but /dev, /proc and /sys (their own settings below).
        for mp in mountpoints():
            if mp.split("/")[1:2] in (["dev"], ["proc"], ["sys"]):
                continue
            run("mount", "-o", "remount,bind,ro", mp)
    if yes(svc, "ProtectHome"):
        for d in ("/home", "/root", "/run/user"):
            if os.path.isdir(d):
                run("mount", "-t", "tmpfs", "-o", "ro,mode=000", "tmpfs", d)
    if yes(svc, "PrivateTmp"):
        for d in ("/tmp", "/var/tmp"):
            if os.path.isdir(d):
                run("mount", "-t", "tmpfs", "-o", "mode=1777", "tmpfs", d)
    if yes(svc, "ProtectKernelTunables"):
        for p in ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/sys"):
            bind_ro(p)
    elif yes(svc, "ProtectControlGroups"):
        bind_ro("/sys/fs/cgroup")
    if yes(svc, "ProtectControlGroups"):
        bind_ro("/sys/fs/cgroup")
    if yes(svc, "ProtectKernelLogs") and os.path.exists("/proc/kmsg"):
        run("mount", "--bind", "/dev/null", "/proc/kmsg")
        run("mount", "-o", "remount,bind,ro", "/proc/kmsg")
    if yes(svc, "ProtectKernelModules"):
        for d in ("/usr/lib/modules", "/lib/modules"):
            if os.path.isdir(d) and not os.path.islink(d):
                run("mount", "-t", "tmpfs", "-o", "ro,mode=000", "tmpfs", d)
    for d in rw_dirs:
        run("mount", "--bind", d, d)
        run("mount", "-o", "remount,bind,rw", d)
    umask = svc.get("UMask", ["0022"])[-1]
    os.umask(int(umask, 8))

    # setpriv: the user, the capabilities (inheritable + ambient survive the uid change and
    # the exec, as under systemd), the bounding set, no_new_privs.
    caps = []
    for v in svc.get("AmbientCapabilities", []):
        caps += [CAPS[c] for c in v.split()]
    bound = []
    for v in svc.get("CapabilityBoundingSet", []):
        bound += [CAPS[c] for c in v.split()]
    cmd = ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    if caps:
        plus = ",".join("+" + c for c in caps)
        cmd += [f"--inh-caps=-all,{plus}", f"--ambient-caps={plus}"]
    if "CapabilityBoundingSet" in svc:
        cmd += ["--bounding-set=-all" + "".join(",+" + c for c in bound)]
    if yes(svc, "NoNewPrivileges") or "SystemCallFilter" in svc:
        cmd += ["--no-new-privs"]
    cmd += [sys.executable, os.path.abspath(__file__), "--seccomp-stage", UNIT, "--"]
    os.execvp("setpriv", cmd + argv_rest)


def expand(group, seen=None):
    """The syscalls of a systemd group (@system-service), from systemd-analyze itself."""
    seen = set() if seen is None else seen
    if group in seen:
        return set()
    seen.add(group)
    out = subprocess.run(["systemd-analyze", "syscall-filter", group], check=True,
                         capture_output=True, text=True).stdout
    names = set()
    for line in out.splitlines()[1:]:
        w = line.strip()
        if not w or w.startswith("#"):
            continue
        names |= expand(w, seen) if w.startswith("@") else {w}
    return names


def stage_seccomp(svc, argv_rest):
    import seccomp  # python3-seccomp

    if "SystemCallFilter" not in svc:
        # The filter below is an allow list; the settings it carries need one.
        needs = [k for k in SECCOMP_SETTINGS if k in svc and k != "SystemCallArchitectures"]
        if needs:
            die(f"{', '.join(needs)} emulated only together with SystemCallFilter=")
        os.execvp(argv_rest[0], argv_rest)

    ret = svc.get("SystemCallErrorNumber", [None])[-1]
    default = seccomp.ERRNO(getattr(errno, ret)) if ret else seccomp.KILL_PROCESS
    allowed = set()
    for v in svc.get("SystemCallFilter", []):
        if v.startswith("~"):
            die("deny-list SystemCallFilter= is not emulated")
        for w in v.split():
            allowed |= expand(w) if w.startswith("@") else {w}
    # Syscalls the settings below allow only with some arguments.
    special = {"socket", "mmap", "mprotect", "pkey_mprotect", "clone", "clone3", "unshare",
               "setns", "sched_setscheduler", "personality", "chmod", "fchmod", "fchmodat"}
    f = seccomp.SyscallFilter(defaction=default)  # native architecture only
    for name in sorted(allowed - special):
        try:
            f.add_rule(seccomp.ALLOW, name)
        except (RuntimeError, ValueError, OSError):
            pass  # not a syscall on this architecture (systemd skips those too)
    A = seccomp.Arg
    families = svc.get("RestrictAddressFamilies", [])
    if families and "socket" in allowed:
        for fam in " ".join(families).split():
            f.add_rule(seccomp.ALLOW, "socket", A(0, seccomp.EQ, getattr(socket, fam)))
    elif "socket" in allowed:
        f.add_rule(seccomp.ALLOW, "socket")
    PROT_WRITE, PROT_EXEC = 0x2, 0x4
    if yes(svc, "MemoryDenyWriteExecute"):
        for prot in (0, PROT_WRITE, PROT_EXEC):
            f.add_rule(seccomp.ALLOW, "mmap", A(2, seccomp.MASKED_EQ, PROT_WRITE | PROT_EXEC, prot))
        for name in ("mprotect", "pkey_mprotect"):
            if name in allowed:
                f.add_rule(seccomp.ALLOW, name, A(2, seccomp.MASKED_EQ, PROT_EXEC, 0))
    else:
        for name in ("mmap", "mprotect", "pkey_mprotect"):
            if name in allowed:
                f.add_rule(seccomp.ALLOW, name)
    CLONE_NEW = 0x7E020000 | 0x00000080  # NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET|NEWTIME
    if yes(svc, "RestrictNamespaces"):
        f.add_rule(seccomp.ALLOW, "clone", A(0, seccomp.MASKED_EQ, CLONE_NEW, 0))
        # As systemd does: clone3's flags are behind a pointer, so ENOSYS makes glibc fall
        # back to clone.
        f.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    else:
        for name in ("clone", "clone3", "unshare", "setns"):
            if name in allowed:
                f.add_rule(seccomp.ALLOW, name)
    if yes(svc, "RestrictRealtime"):
        for policy in (0, 3, 5):  # SCHED_OTHER, SCHED_BATCH, SCHED_IDLE
            f.add_rule(seccomp.ALLOW, "sched_setscheduler", A(1, seccomp.EQ, policy))
    elif "sched_setscheduler" in allowed:
        f.add_rule(seccomp.ALLOW, "sched_setscheduler")
    if yes(svc, "LockPersonality"):
        for p in (0, 0xFFFFFFFF):  # PER_LINUX, and the query
            f.add_rule(seccomp.ALLOW, "personality", A(0, seccomp.EQ, p))
    elif "personality" in allowed:
        f.add_rule(seccomp.ALLOW, "personality")
    S_ISID = 0o6000
    for name, arg in (("chmod", 1), ("fchmod", 1), ("fchmodat", 2)):
        if name not in allowed:
            continue
        if yes(svc, "RestrictSUIDSGID"):
            f.add_rule(seccomp.ALLOW, name, A(arg, seccomp.MASKED_EQ, S_ISID, 0))
        else:
            f.add_rule(seccomp.ALLOW, name)
    f.load()
    os.execvp(argv_rest[0], argv_rest)


def main():
    global UNIT
    args = sys.argv[1:]
    seccomp_stage = args[:1] == ["--seccomp-stage"]
    if seccomp_stage:
        args = args[1:]
    if "--" not in args:
        die("usage: unit_sandbox.py UNIT [--user UID:GID] -- CMD [ARG...]")
    split = args.index("--")
    opts, rest = args[:split], args[split + 1:]
    UNIT = opts[0]
    svc = parse_unit(UNIT)
    if seccomp_stage:
        stage_seccomp(svc, rest)
        return
    unknown = [k for k in svc if k not in SETTINGS]
    if unknown:
        die(f"{UNIT}: no emulation for {', '.join(unknown)} (add it to SETTINGS)")
    if "--user" in opts:
        uid, gid = (int(x) for x in opts[opts.index("--user") + 1].split(":"))
    else:
        uid = pwd.getpwnam(svc["User"][-1]).pw_uid
        gid = grp.getgrnam(svc["Group"][-1]).gr_gid
    if os.environ.get("UNIT_SANDBOX_NS") != UNIT:
        for k in svc:
            if SETTINGS[k] and SETTINGS[k].startswith("not"):
                print(f"unit_sandbox: {k}= {SETTINGS[k]}", file=sys.stderr)
        os.environ["UNIT_SANDBOX_NS"] = UNIT
        cmd = ["unshare", "--mount", "--propagation", "private"]
        if yes(svc, "PrivateIPC"):
            cmd.append("--ipc")
        if yes(svc, "ProtectHostname"):
            cmd.append("--uts")
        os.execvp("unshare", cmd + [sys.executable, os.path.abspath(__file__)] + sys.argv[1:])
    stage_mounts(svc, uid, gid, rest)


UNIT = None
if __name__ == "__main__":
    main()
