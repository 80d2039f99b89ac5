"""How many CPUs this process may really use: the CPUs its affinity mask
allows, capped by its cgroup's CPU quota (a container started with
``--cpus=2`` on a 64-core host sees 64 CPUs but gets the time of 2).

Only Linux has cgroups; elsewhere the affinity mask (or the CPU count) is the
whole answer.
"""
import os

CGROUP_ROOT = "/sys/fs/cgroup"
SELF_CGROUP = "/proc/self/cgroup"


def affinity_cpus():
    """The CPUs the affinity mask lets this process run on (all of them where
    the OS has no affinity call)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def usable_cpus():
    """min(affinity_cpus(), cgroup_cpu_limit()): the default thread count."""
    limit = cgroup_cpu_limit(CGROUP_ROOT, SELF_CGROUP)
    cpus = affinity_cpus()
    return cpus if limit is None else max(1, min(cpus, limit))


def cgroup_cpu_limit(root=CGROUP_ROOT, self_cgroup=SELF_CGROUP):
    """The whole CPUs the cgroup CPU quota allows this process, rounded up
    (ceil(quota / period)), or None when no quota applies or none can be read.

    Reads cgroup v2's ``cpu.max`` ("max 100000" or "150000 100000") and v1's
    ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1 = no quota), in this
    process's cgroup (from ``self_cgroup``) and every cgroup above it under
    ``root``: the tightest one binds. A container usually sees its own cgroup
    as the root, while ``self_cgroup`` still names the host's path; only the
    levels that exist are read. ``root`` and ``self_cgroup`` are parameters so
    tests can point them at fake files.
    """
    limits = []
    for version, relative in _own_cgroups(self_cgroup):
        if version == 2:
            base = root
        else:
            base = next((os.path.join(root, name) for name in ("cpu", "cpu,cpuacct", "cpuacct,cpu")
                         if os.path.isdir(os.path.join(root, name))), None)
            if base is None:
                continue
        for folder in _folder_and_ancestors(base, relative):
            quota = _read_v2_quota(folder) if version == 2 else _read_v1_quota(folder)
            if quota is not None:
                limits.append(quota)
    return max(1, min(limits)) if limits else None


def _own_cgroups(self_cgroup):
    """(version, path) of the cgroups /proc/self/cgroup lists that govern CPU
    time: the v2 unified one ("0::/path") and a v1 one with the cpu controller
    ("4:cpu,cpuacct:/path"). Without the file: the root of each."""
    try:
        with open(self_cgroup, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return [(2, "/"), (1, "/")]
    found = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            found.append((2, path))
        elif "cpu" in controllers.split(","):
            found.append((1, path))
    return found


def _folder_and_ancestors(base, relative):
    """base/relative, then each folder above it up to base itself, the ones
    that exist only."""
    steps = [part for part in relative.split("/") if part and part != ".."]
    folders = []
    for depth in range(len(steps), -1, -1):
        folder = os.path.join(base, *steps[:depth])
        if os.path.isdir(folder):
            folders.append(folder)
    return folders


def _read_v2_quota(folder):
    """ceil(quota / period) from cgroup v2's cpu.max, None for "max" or no file."""
    fields = _read_words(os.path.join(folder, "cpu.max"))
    if fields is None or len(fields) != 2 or fields[0] == "max":
        return None
    return _ratio(fields[0], fields[1])


def _read_v1_quota(folder):
    """ceil(cfs_quota_us / cfs_period_us) from cgroup v1, None for -1 or no file."""
    quota = _read_words(os.path.join(folder, "cpu.cfs_quota_us"))
    period = _read_words(os.path.join(folder, "cpu.cfs_period_us"))
    if quota is None or period is None or len(quota) != 1 or len(period) != 1:
        return None
    return _ratio(quota[0], period[0])


def _ratio(quota, period):
    """ceil(quota / period) when both are positive integers (ceil is monotone,
    so the smallest of these is the tightest quota's); None otherwise (-1, an
    unreadable or zero period)."""
    try:
        quota, period = int(quota), int(period)
    except ValueError:
        return None
    if quota <= 0 or period <= 0:
        return None
    return -(-quota // period)


def _read_words(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().split()
    except OSError:
        return None
