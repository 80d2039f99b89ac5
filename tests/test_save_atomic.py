"""Saving over what is already there (issue 12, items 7 and 8): an existing
file keeps its mode, a symlink is written through, a FIFO, device or
directory is refused, and the temporaries of killed saves are removed by the
next save of the same file -- never a running writer's, never anything else."""
import os
import signal
import stat
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

from fastnn import layers, models
from fastnn.saving import archive, atomic_write

posix_only = pytest.mark.skipif(os.name != "posix", reason="POSIX modes, links and signals")


def small_model():
    return models.Sequential([layers.Input(shape=(3,)), layers.Dense(2)])


def mode_of(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def is_model_file(path):
    with zipfile.ZipFile(path) as zf:
        return "model.json" in zf.namelist()


@pytest.fixture
def umask():
    """Set the process umask for the test, then restore it."""
    previous = os.umask(0o022)
    os.umask(previous)
    yield lambda value: os.umask(value)
    os.umask(previous)


# ---- item 8: what is at the path ------------------------------------------------------
@posix_only
@pytest.mark.parametrize("mode", [0o600, 0o640, 0o666, 0o400], ids=oct)
def test_an_existing_file_keeps_its_mode(tmp_path, umask, mode):
    umask(0o022)
    path = tmp_path / "m.fnn"
    path.write_bytes(b"old")
    os.chmod(path, mode)
    small_model().save(path)
    assert mode_of(path) == mode and is_model_file(path)
    assert os.listdir(tmp_path) == ["m.fnn"]


@posix_only
def test_a_new_file_gets_the_umask_default(tmp_path, umask):
    umask(0o027)
    small_model().save(tmp_path / "new.fnn")
    assert mode_of(tmp_path / "new.fnn") == 0o640
    umask(0o022)
    small_model().save_weights(tmp_path / "w.fnn")
    assert mode_of(tmp_path / "w.fnn") == 0o644


@posix_only
def test_the_weights_are_never_readable_beyond_the_files_mode(tmp_path, umask, monkeypatch):
    """The temporary has the file's mode from its creation, not only at the end."""
    umask(0o022)
    path = tmp_path / "m.fnn"
    path.write_bytes(b"old")
    os.chmod(path, 0o600)
    seen = []
    original = archive._write_entry

    def recording_write_entry(zf, name, *args):
        seen.extend(mode_of(tmp_path / entry) for entry in os.listdir(tmp_path)
                    if entry.endswith(".tmp"))
        return original(zf, name, *args)

    monkeypatch.setattr(archive, "_write_entry", recording_write_entry)
    small_model().save(path)
    assert seen and set(seen) == {0o600}


@posix_only
def test_a_symlink_is_written_through_and_stays_a_link(tmp_path):
    (tmp_path / "store").mkdir()
    real = tmp_path / "store" / "real.fnn"
    real.write_bytes(b"old")
    os.chmod(real, 0o600)
    link = tmp_path / "link.fnn"
    link.symlink_to(os.path.join("store", "real.fnn"))           # relative, as ln -s makes
    chain = tmp_path / "chain.fnn"
    chain.symlink_to(link)
    model = small_model()
    model.save(link)
    assert link.is_symlink() and os.readlink(link) == os.path.join("store", "real.fnn")
    assert is_model_file(real) and mode_of(real) == 0o600
    model.save(chain)
    assert chain.is_symlink() and link.is_symlink() and is_model_file(real)
    assert sorted(os.listdir(tmp_path)) == ["chain.fnn", "link.fnn", "store"]
    assert os.listdir(tmp_path / "store") == ["real.fnn"]
    loaded = models.load_model(chain)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)


@posix_only
def test_a_dangling_symlink_creates_its_target(tmp_path):
    link = tmp_path / "link.fnn"
    link.symlink_to("target.fnn")
    small_model().save(link)
    assert link.is_symlink() and is_model_file(tmp_path / "target.fnn")


def non_regular(kind, tmp_path):
    path = tmp_path / f"{kind}.fnn"
    if kind == "directory":
        path.mkdir()
    elif kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("needs FIFOs")
        os.mkfifo(path)
    elif kind == "device":
        # a device node of our own (as /dev/null), so that a regression can only
        # ever replace this one, never the system's
        try:
            os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except (OSError, AttributeError):
            pytest.skip("creating a device node needs root")
    return path


@pytest.mark.parametrize("kind,words", [("directory", "a directory"),
                                        ("fifo", r"a FIFO \(named pipe\)"),
                                        ("device", "a character device")])
@pytest.mark.parametrize("through_link", [False, True], ids=["direct", "via-symlink"])
def test_a_non_regular_target_is_refused_and_left_alone(tmp_path, kind, words, through_link):
    target = non_regular(kind, tmp_path)
    before = os.lstat(target)
    path = target
    if through_link:
        path = tmp_path / "link.fnn"
        path.symlink_to(target)
    with pytest.raises(ValueError, match=f"cannot save to {path}: it is {words}, not a "
                                         "regular file"):
        small_model().save(path)
    after = os.lstat(target)
    assert (after.st_ino, after.st_mode) == (before.st_ino, before.st_mode)
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]


@posix_only
@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="changing a file's owner needs root")
def test_root_saving_over_a_users_file_keeps_its_owner(tmp_path):
    path = tmp_path / "m.fnn"
    path.write_bytes(b"old")
    os.chown(path, 4321, 4321)
    os.chmod(path, 0o600)
    small_model().save(path)
    info = os.stat(path)
    assert (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) == (4321, 4321, 0o600)


# ---- item 7: temporaries of killed saves --------------------------------------------
BLOCKED_SAVE = textwrap.dedent("""
    import sys, time
    from fastnn import layers, models
    from fastnn.saving import archive
    original = archive._write_entry

    def write_then_wait(zf, name, *args):
        original(zf, name, *args)
        print("writing", flush=True)
        time.sleep(600)

    archive._write_entry = write_then_wait
    models.Sequential([layers.Input(shape=(3,)), layers.Dense(2)]).save(sys.argv[1])
""")


def temporaries(folder):
    return sorted(name for name in os.listdir(folder) if name.endswith(".tmp"))


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_a_killed_saves_temporary_is_removed_by_the_next_save_a_running_ones_kept(tmp_path):
    path = tmp_path / "m.fnn"
    small_model().save(path)
    writers = [subprocess.Popen([sys.executable, "-c", BLOCKED_SAVE, str(path)],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for writer in writers:
            assert writer.stdout.readline() == "writing\n"      # each is mid-save
        killed, running = writers
        by_pid = {writer.pid: [t for t in temporaries(tmp_path) if f".{writer.pid}." in t]
                  for writer in writers}
        assert all(len(names) == 1 for names in by_pid.values()), temporaries(tmp_path)
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert len(temporaries(tmp_path)) == 2           # nothing removes it by itself

        small_model().save(path)
        assert temporaries(tmp_path) == by_pid[running.pid]   # the killed one's only
        assert sorted(os.listdir(tmp_path)) == sorted(["m.fnn"] + by_pid[running.pid])

        running.send_signal(signal.SIGKILL)
        running.wait()
        small_model().save(path)
        assert os.listdir(tmp_path) == ["m.fnn"] and is_model_file(path)
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
            writer.stdout.close()


def a_finished_process_id():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@posix_only
def test_only_this_files_temporaries_of_ended_writers_are_removed(tmp_path):
    dead = a_finished_process_id()
    name = "m.fnn"
    this_machine = atomic_write.temporary_name(name, 1, "x").split(".")[3]
    other_machine = "ffffffff" if this_machine == "00000000" else "00000000"
    stale = [atomic_write.temporary_name(name, dead, "0123456789ab"),
             atomic_write.temporary_name(name, dead, "ba9876543210")]
    kept = [
        atomic_write.temporary_name(name, 1, "0123456789ab"),            # init: running
        atomic_write.temporary_name(name, os.getppid(), "0123456789ab"),  # pytest's parent
        atomic_write.temporary_name(name, os.getpid(), "0123456789ab"),   # this process
        atomic_write.temporary_name("m.fnn.bak", dead, "0123456789ab"),   # another file's
        atomic_write.temporary_name("m", dead, "0123456789ab"),           # another file's
        f".{name}.{other_machine}.{dead}.0123456789ab.tmp",  # cannot be checked from here
        f".{name}.0123456789ab.tmp",                         # an older fastnn's: no pid
        f".{name}.tmp", f"{name}.bak", "notes.txt",
    ]
    for entry in stale + kept:
        (tmp_path / entry).write_bytes(b"partial")
    small_model().save(tmp_path / name)
    assert sorted(os.listdir(tmp_path)) == sorted(kept + [name])


def test_the_temporary_is_named_after_the_file_and_this_process(tmp_path, monkeypatch):
    names = []
    original = archive._write_entry

    def recording_write_entry(zf, name, *args):
        names.extend(temporaries(tmp_path))
        return original(zf, name, *args)

    monkeypatch.setattr(archive, "_write_entry", recording_write_entry)
    small_model().save(tmp_path / "m.fnn")
    assert names
    parts = names[0].split(".")
    assert parts[:2] == ["", "m"] and parts[2] == "fnn" and parts[-1] == "tmp"
    assert int(parts[4]) == os.getpid()
    assert os.listdir(tmp_path) == ["m.fnn"]
