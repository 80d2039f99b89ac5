"""Writing a file so that a crash never leaves a half-written one in its place.

``replace_file(path, write)`` has ``write`` fill a temporary file beside the
file ``path`` names, flushes it to disk, then ``os.replace``-s it over that
file. What is at ``path`` is treated as other careful tools (editors,
``sed -i``) treat it:

- a symlink is written through: the file it points to is replaced, and the
  link stays a link;
- an existing file keeps its permission bits (a 0600 file stays 0600; the
  temporary has them from the start, so the data is never more readable
  than the file was) and, where the system allows it, its owner and group;
  a new file gets the usual mode, 0666 less the umask;
- a FIFO, a device or a directory is refused with a ValueError, never
  replaced.

A temporary is named ``.<name>.<host>.<pid>.<random>.tmp``: ``<host>`` tags the
machine (8 hex digits) and ``<pid>`` is the writing process. A save killed
before it finished (SIGKILL, a power cut) leaves its temporary behind; the
next save of the same file removes the temporaries of that file whose
writer, on this machine, is no longer running (POSIX: ``os.kill(pid, 0)``).
A running writer's temporary is never removed -- nor one from another
machine sharing the folder, whose process cannot be checked from here --
and nothing else is ever created beside the file. (On Windows, where
``os.kill`` would end the process, stale temporaries are left alone.)
"""
import contextlib
import os
import re
import secrets
import stat
import zlib

_TEMP_SUFFIX = re.compile(r"([0-9a-f]{8})\.([0-9]{1,10})\.[0-9a-f]{12}\.tmp")


def replace_file(path, write):
    """Call ``write(stream)`` on a new temporary file, then move it over the
    file ``path`` names (see the module docstring)."""
    target = os.path.realpath(path)           # through symlinks, to the file itself
    existing = _existing_regular_file(target, path)
    directory, name = os.path.split(target)
    remove_stale_temporaries(directory, name)
    fd, temp = _create_temporary(directory, name, existing)
    try:
        with os.fdopen(fd, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    _fsync_directory(directory)


def _existing_regular_file(target, path):
    """The ``os.stat`` of the file about to be replaced; None when there is none."""
    try:
        info = os.stat(target)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"cannot save to {path}: it is {file_kind(info.st_mode)}, not a "
                         "regular file (fastnn writes models as regular files only; "
                         "choose a file name)")
    return info


def file_kind(mode):
    """What a non-regular file is, in words ("a directory", "a FIFO (named pipe)", ...)."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


# ---- the temporary --------------------------------------------------------------
def temporary_name(name, pid, token):
    """The name of the temporary that process ``pid`` writes for file ``name``."""
    return f".{name}.{_host_tag()}.{pid}.{token}.tmp"


def _host_tag():
    # Process ids are per machine: the tag keeps a save from judging the
    # temporaries of another machine writing to the same shared folder.
    node = os.uname().nodename if hasattr(os, "uname") else ""
    return f"{zlib.crc32(node.encode('utf-8', 'replace')):08x}"


def _create_temporary(directory, name, existing):
    """(fd, path) of a new, empty temporary beside ``name``, with ``existing``'s
    permission bits (and owner, where allowed) when there is an existing file."""
    mode = 0o666 if existing is None else stat.S_IMODE(existing.st_mode) & 0o777
    for _ in range(100):
        temp = os.path.join(directory, temporary_name(name, os.getpid(), secrets.token_hex(6)))
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL
                         | getattr(os, "O_BINARY", 0), mode)
            break
        except FileExistsError:
            continue
    else:
        raise FileExistsError(f"could not create a temporary file in {directory}")
    if existing is not None:
        try:
            _keep_owner_and_mode(fd, temp, existing, mode)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
    return fd, temp


def _keep_owner_and_mode(fd, temp, existing, mode):
    """Give the temporary the replaced file's owner and group where this process may
    (as ``sed -i`` does: both, else the group alone, else neither), then its exact
    permission bits (os.open applied the umask to them)."""
    if hasattr(os, "fchown"):
        created = os.fstat(fd)
        if (created.st_uid, created.st_gid) != (existing.st_uid, existing.st_gid):
            try:
                os.fchown(fd, existing.st_uid, existing.st_gid)
            except OSError:
                with contextlib.suppress(OSError):
                    os.fchown(fd, -1, existing.st_gid)
    if hasattr(os, "fchmod"):
        os.fchmod(fd, mode)
    else:
        os.chmod(temp, mode)


# ---- stale temporaries ---------------------------------------------------------
def remove_stale_temporaries(directory, name):
    """Remove the temporaries of file ``name`` in ``directory`` whose writer, a
    process of this machine, has ended. Returns the paths removed."""
    if os.name != "posix":
        return []           # Windows' os.kill(pid, 0) would terminate the process
    prefix, host = f".{name}.", _host_tag()
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed      # the save itself will report an unusable folder
    for entry in entries:
        if not entry.name.startswith(prefix):
            continue
        # the rest must be exactly "<host>.<pid>.<random>.tmp", so that another
        # file whose name starts with this one's ("m" and "m.fnn") is never taken
        match = _TEMP_SUFFIX.fullmatch(entry.name[len(prefix):])
        if match is None or match.group(1) != host or _process_alive(int(match.group(2))):
            continue
        with contextlib.suppress(OSError):    # another save may have removed it first
            os.unlink(entry.path)
            removed.append(entry.path)
    return removed


def _process_alive(pid):
    """Whether process ``pid`` may still be running (when in doubt: yes)."""
    if pid == os.getpid():
        return True         # another thread of this process is saving the same file
    try:
        os.kill(pid, 0)     # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True         # PermissionError: it exists, owned by another user
    return True


def _fsync_directory(directory):
    """Make the rename itself durable (POSIX; a no-op where directories can't be opened)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
