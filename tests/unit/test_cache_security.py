"""Trust model of the compiled-model cache (hlm_cli.sampling.cache) and the rules for the
detached background compile (hlm_cli.sampling.quick.start_background_fills); docs/cache.md.

Most tests work on entry bytes, directories and lock files directly. One module fixture
compiles a four-line PyMC model once (a few seconds) for the tests that go through
compile_model.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from hlm_cli import sampling
from hlm_cli.sampling import cache as compile_cache
from hlm_cli.sampling import quick as compile_quick

LOGGER = "hlm_cli.sampling.cache"


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    """Every test gets its own key file and forgets the keys and warnings of earlier tests."""
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(tmp_path / "keydir" / "cache.key"))
    compile_cache._KEYS.clear()
    compile_cache._WARNED.clear()
    yield
    compile_cache._KEYS.clear()
    compile_cache._WARNED.clear()


class _Payload:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _old_format(body: bytes) -> bytes:
    """What _read_entry accepted before: magic + unkeyed SHA-256 + pickle."""
    return compile_cache._MAGIC + hashlib.sha256(body).digest() + body


def _store(tmp_path: Path) -> tuple[Path, bytes]:
    store = compile_cache._open_store(tmp_path / "cache")
    assert store is not None
    return store


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == logging.WARNING]


# --------------------------------------------------------------------------
# the key
# --------------------------------------------------------------------------


def test_key_file_location(monkeypatch, tmp_path):
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(tmp_path / "k"))
    assert compile_cache.key_file() == tmp_path / "k"
    monkeypatch.delenv("HLM_CACHE_KEY_FILE")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert compile_cache.key_file() == tmp_path / "xdg" / "hlm" / "cache.key"
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert compile_cache.key_file() == tmp_path / "home" / ".config" / "hlm" / "cache.key"


def test_key_is_created_once_mode_0600_in_a_0700_directory():
    path = compile_cache.key_file()
    assert not path.exists()
    secret = compile_cache._secret()
    assert len(secret) == 32 and path.read_bytes() == secret
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    compile_cache._KEYS.clear()
    compile_cache._create_key(path)  # a second process racing to create it keeps the first key
    assert path.read_bytes() == secret and compile_cache._secret() == secret
    assert [p.name for p in path.parent.iterdir()] == ["cache.key"]  # no temporary files left


@pytest.mark.parametrize("mode", [0o644, 0o620])
def test_key_readable_or_writable_by_others_is_refused(tmp_path, caplog, mode):
    path = compile_cache.key_file()
    compile_cache._secret()
    compile_cache._KEYS.clear()
    path.chmod(mode)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._open_store(tmp_path / "cache") is None
        assert compile_cache._open_store(tmp_path / "cache") is None
    (msg,) = _warnings(caplog)  # once
    assert f"key file {path}" in msg and f"mode {mode:04o}" in msg and "delete it" in msg


def test_short_key_is_refused(tmp_path, caplog):
    path = compile_cache.key_file()
    path.parent.mkdir(mode=0o700)
    path.write_bytes(b"short")
    path.chmod(0o600)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._open_store(tmp_path / "cache") is None
    (msg,) = _warnings(caplog)
    assert "shorter than 32 bytes" in msg


# --------------------------------------------------------------------------
# the directory
# --------------------------------------------------------------------------


def test_cache_directories_are_created_0700(tmp_path):
    entry_dir, secret = _store(tmp_path)
    assert entry_dir == tmp_path / "cache" / compile_cache._SUBDIR
    assert (tmp_path / "cache").stat().st_mode & 0o777 == 0o700
    assert entry_dir.stat().st_mode & 0o777 == 0o700
    assert secret == compile_cache.key_file().read_bytes()


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o1777])
def test_directory_writable_by_others_is_refused_once(tmp_path, caplog, mode):
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(mode)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._open_store(cache) is None
        assert compile_cache._open_store(cache) is None
    (msg,) = _warnings(caplog)
    assert str(cache) in msg and f"mode {mode & 0o7777:04o}" in msg and f"chmod go-w {cache}" in msg
    assert list(cache.iterdir()) == []  # nothing created in it


def test_entry_subdirectory_writable_by_others_is_refused(tmp_path, caplog):
    entry_dir, _ = _store(tmp_path)
    entry_dir.chmod(0o757)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._open_store(tmp_path / "cache") is None
    (msg,) = _warnings(caplog)
    assert str(entry_dir) in msg


def test_directory_of_another_user_is_refused(tmp_path, caplog, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 1)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._open_store(cache) is None
    (msg,) = _warnings(caplog)
    assert f"belongs to uid {me}, not to you (uid {me + 1})" in msg and "HLM_CACHE_DIR" in msg


def test_cache_dir_that_is_a_file_is_unusable_quietly(tmp_path, caplog):
    f = tmp_path / "file"
    f.write_text("x")
    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        assert compile_cache._open_store(f) is None
    assert _warnings(caplog) == []


# --------------------------------------------------------------------------
# entries
# --------------------------------------------------------------------------


def _benign_body() -> bytes:
    return pickle.dumps({"format": compile_cache._FORMAT_VERSION, "meta": {"n_dim": 1}})


def test_sealed_entry_is_read(tmp_path):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("a" * 64 + ".entry")
    compile_cache._atomic_write(path, compile_cache._seal(secret, path.name, _benign_body()))
    assert path.stat().st_mode & 0o777 == 0o600
    assert compile_cache._read_entry(path, secret) == {"format": compile_cache._FORMAT_VERSION, "meta": {"n_dim": 1}}
    assert path.exists()


def test_planted_pickle_is_not_executed_and_is_deleted(tmp_path):
    entry_dir, secret = _store(tmp_path)
    marker = tmp_path / "owned"
    body = pickle.dumps(_Payload(marker))
    path = entry_dir / ("b" * 64 + ".entry")
    for blob in (
        _old_format(body),  # valid SHA-256, no HMAC
        compile_cache._MAGIC + b"\0" * 32 + body,  # wrong tag
        compile_cache._seal(os.urandom(32), path.name, body),  # another key's tag
        compile_cache._seal(secret, "c" * 64 + ".entry", body),  # the right key, another entry's name
    ):
        path.write_bytes(blob)
        path.chmod(0o600)
        assert compile_cache._read_entry(path, secret) is None
        assert not marker.exists(), "the planted pickle ran"
        assert not path.exists(), "the refused entry was kept"
    pickle.loads(body)  # the payload is live: it does create the marker when unpickled
    assert marker.exists()


def test_valid_sha_without_hmac_is_refused(tmp_path):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("d" * 64 + ".entry")
    path.write_bytes(_old_format(_benign_body()))
    assert compile_cache._read_entry(path, secret) is None and not path.exists()


def test_truncated_entry_is_deleted_and_can_be_rewritten(tmp_path):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("e" * 64 + ".entry")
    blob = compile_cache._seal(secret, path.name, _benign_body())
    for cut in (len(blob) - 5, len(compile_cache._MAGIC) + 32, 10, 0):
        path.write_bytes(blob[:cut])
        assert compile_cache._read_entry(path, secret) is None
        assert not path.exists()
    compile_cache._atomic_write(path, blob)
    assert compile_cache._read_entry(path, secret) is not None


def test_entry_writable_by_others_is_refused_with_a_warning(tmp_path, caplog):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("f" * 64 + ".entry")
    path.write_bytes(compile_cache._seal(secret, path.name, _benign_body()))
    path.chmod(0o666)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._read_entry(path, secret) is None
    (msg,) = _warnings(caplog)
    assert str(path) in msg and "mode 0666" in msg
    assert not path.exists()


def test_entry_of_another_user_is_refused(tmp_path, caplog, monkeypatch):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("1" * 64 + ".entry")
    path.write_bytes(compile_cache._seal(secret, path.name, _benign_body()))
    path.chmod(0o600)
    me = os.getuid()
    monkeypatch.setattr(os, "getuid", lambda: me + 7)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        assert compile_cache._read_entry(path, secret) is None
    (msg,) = _warnings(caplog)
    assert f"belongs to uid {me}" in msg and not path.exists()


def test_symlinked_entry_is_refused_and_its_target_kept(tmp_path):
    entry_dir, secret = _store(tmp_path)
    path = entry_dir / ("2" * 64 + ".entry")
    target = tmp_path / "elsewhere.entry"
    target.write_bytes(compile_cache._seal(secret, path.name, _benign_body()))
    path.symlink_to(target)
    assert compile_cache._read_entry(path, secret) is None
    assert not path.is_symlink() and target.exists()


# --------------------------------------------------------------------------
# through compile_model (one small real model)
# --------------------------------------------------------------------------


def _model():
    import pymc as pm

    with pm.Model() as model:
        y = pm.Data("y", np.array([0.1, -0.3, 0.5, 1.2, 0.7]))
        mu = pm.Normal("mu", 0, 1)
        sigma = pm.HalfNormal("sigma", 1)
        pm.Normal("obs", mu, sigma, observed=y)
    return model


@pytest.fixture(scope="module")
def compiled_once(tmp_path_factory):
    """A cache directory with the model's entry, written under the key file `key`."""
    root = tmp_path_factory.mktemp("compiled")
    key = root / "key"
    old = os.environ.get("HLM_CACHE_KEY_FILE")
    os.environ["HLM_CACHE_KEY_FILE"] = str(key)
    compile_cache._KEYS.clear()
    try:
        compile_cache.clear_memo()
        compile_cache.compile_model(_model(), structure_key="security-test", cache_dir=root / "cache")
    finally:
        if old is None:
            os.environ.pop("HLM_CACHE_KEY_FILE", None)
        else:
            os.environ["HLM_CACHE_KEY_FILE"] = old
        compile_cache._KEYS.clear()
    (entry,) = (root / "cache").rglob("*.entry")
    return root / "cache", key, entry


def test_planted_entry_is_replaced_by_the_next_compile(compiled_once, tmp_path, monkeypatch):
    cache, key, entry = compiled_once
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(key))
    marker = tmp_path / "owned"
    entry.write_bytes(_old_format(pickle.dumps(_Payload(marker))))
    compile_cache.clear_memo()
    before = compile_cache.stats()
    compiled = compile_cache.compile_model(_model(), structure_key="security-test", cache_dir=cache)
    after = compile_cache.stats()
    assert not marker.exists(), "the planted pickle ran during compile_model"
    assert after["compiles"] == before["compiles"] + 1 and after["disk_writes"] == before["disk_writes"] + 1
    assert compiled.n_dim == 2
    assert compile_cache._read_entry(entry, compile_cache._secret()) is not None  # rewritten, sealed
    compile_cache.clear_memo()
    compile_cache.compile_model(_model(), structure_key="security-test", cache_dir=cache)
    assert compile_cache.stats()["disk_hits"] == after["disk_hits"] + 1


def test_unsafe_directory_compiles_without_the_cache(compiled_once, monkeypatch, caplog):
    """The entry is valid, but the directory is world-writable: it is not loaded, nothing is
    written, the fit still gets a compiled model, and a quick fit schedules no fill."""
    cache, key, entry = compiled_once
    monkeypatch.setenv("HLM_CACHE_KEY_FILE", str(key))
    monkeypatch.setenv("HLM_QUICK_COMPILE", "1")
    compile_quick._PENDING.clear()
    compile_quick._SEEN.clear()
    mtime = entry.stat().st_mtime_ns
    cache.chmod(0o777)
    try:
        compile_cache.clear_memo()
        before = compile_cache.stats()
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            compiled = sampling.compile_model(_model(), structure_key="security-test", cache_dir=cache, quick=True)[0]
        after = compile_cache.stats()
        assert compile_quick.is_quick(compiled) and compile_quick.pending() == 0
        assert after["disk_hits"] == before["disk_hits"] and after["quick"] == before["quick"] + 1
        (msg,) = _warnings(caplog)
        assert "compiled-model cache not used" in msg and "mode 0777" in msg
        assert entry.stat().st_mtime_ns == mtime and len(list(cache.rglob("*"))) == 2
    finally:
        cache.chmod(0o700)
        compile_quick._PENDING.clear()
        compile_quick._SEEN.clear()


# --------------------------------------------------------------------------
# background compiles
# --------------------------------------------------------------------------


@pytest.fixture
def fills(tmp_path, monkeypatch):
    """One pending fill into a trusted cache; forks are recorded, not made; stdout is a tty."""
    cache = tmp_path / "cache"
    assert compile_cache._open_store(cache) is not None
    started = []
    monkeypatch.setattr(compile_quick, "_fork_detached", lambda models, d, lock: started.append((models, d, lock)))
    monkeypatch.setattr(os, "isatty", lambda fd: True)
    monkeypatch.delenv("HLM_BACKGROUND_COMPILE", raising=False)
    monkeypatch.delenv("CI", raising=False)

    def pend(n: int = 1) -> None:
        for i in range(n):
            compile_quick.schedule_fill(object(), f"key{i}", cache, cache / compile_cache._SUBDIR / f"{i}.entry")

    compile_quick._PENDING.clear()
    yield cache, pend, started
    compile_quick._PENDING.clear()


def test_background_fill_starts_one_process_per_cache_in_a_terminal(fills):
    cache, pend, started = fills
    pend(3)
    assert compile_quick.background_enabled()
    assert compile_quick.start_background_fills() == 1
    ((models, d, lock),) = started
    assert d == cache and [k for _, k in models] == ["key0", "key1", "key2"]
    assert lock == cache / "background-0.filling" and lock.read_text().split()[0] == str(os.getpid())
    assert lock.stat().st_mode & 0o777 == 0o600
    assert compile_quick.pending() == 0


def test_no_background_fill_without_a_terminal(fills, monkeypatch):
    cache, pend, started = fills
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    pend()
    assert not compile_quick.background_enabled()
    assert compile_quick.start_background_fills() == 0
    assert started == [] and compile_quick.pending() == 0 and not list(cache.glob("*.filling"))


@pytest.mark.parametrize("value", ["true", "1", "yes"])
def test_no_background_fill_in_ci(fills, monkeypatch, value):
    cache, pend, started = fills
    monkeypatch.setenv("CI", value)
    pend()
    assert compile_quick.start_background_fills() == 0 and started == []


def test_ci_false_does_not_count(fills, monkeypatch):
    cache, pend, started = fills
    monkeypatch.setenv("CI", "false")
    pend()
    assert compile_quick.start_background_fills() == 1 and len(started) == 1


def test_background_compile_0_turns_it_off(fills, monkeypatch):
    cache, pend, started = fills
    monkeypatch.setenv("HLM_BACKGROUND_COMPILE", "0")
    pend()
    assert compile_quick.start_background_fills() == 0 and started == []


def test_background_compile_1_is_an_explicit_request(fills, monkeypatch):
    cache, pend, started = fills
    monkeypatch.setenv("HLM_BACKGROUND_COMPILE", "1")
    monkeypatch.setenv("CI", "true")
    monkeypatch.setattr(os, "isatty", lambda fd: False)
    pend()
    assert compile_quick.start_background_fills() == 1 and len(started) == 1


def test_cap_reached_starts_nothing_until_the_holder_is_gone(fills):
    cache, pend, started = fills
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lock = compile_quick.slot_locks(cache)[0]
        lock.write_text(compile_quick._owner_line(holder.pid))
        assert compile_quick.running(cache) == 1
        pend()
        assert compile_quick.start_background_fills() == 0 and started == []
        assert compile_quick._holder(lock)[0] == holder.pid  # a live holder's lock is kept
    finally:
        holder.kill()
        holder.wait()
    assert compile_quick.running(cache) == 0  # its process is gone: the lock is stale
    pend()
    assert compile_quick.start_background_fills() == 1 and len(started) == 1
    assert compile_quick._holder(lock)[0] == os.getpid()


def test_lock_of_a_reused_pid_is_stale(tmp_path):
    lock = tmp_path / "background-0.filling"
    lock.write_text(f"{os.getpid()} 1\n")  # our pid, another process's start time
    assert compile_quick._take_lock(lock)
    assert compile_quick._holder(lock) == (os.getpid(), compile_quick._start_time(os.getpid()))
    assert not compile_quick._take_lock(lock)  # now held by a live process: us


def test_unsafe_cache_gets_no_background_fill(fills):
    cache, pend, started = fills
    pend()
    cache.chmod(0o777)
    try:
        assert compile_quick.start_background_fills() == 0 and started == []
        assert not list(cache.glob("*.filling"))
    finally:
        cache.chmod(0o700)


def test_model_already_cached_gets_no_background_fill(fills):
    cache, pend, started = fills
    pend()
    (cache / compile_cache._SUBDIR / "0.entry").write_bytes(b"x")
    assert compile_quick.start_background_fills() == 0 and started == []


class _Slow:
    """A 'model' whose every attribute takes a second and then fails: keeps the compiler busy."""

    def __getattr__(self, name):
        time.sleep(1.0)
        raise AttributeError(name)


@pytest.mark.skipif(sys.platform != "linux", reason="the background compile forks (Linux only)")
def test_detached_compiler_holds_the_lock_while_it_runs(tmp_path):
    cache = tmp_path / "cache"
    assert compile_cache._open_store(cache) is not None
    (lock,) = compile_quick.slot_locks(cache)
    assert compile_quick._take_lock(lock)
    compile_quick._fork_detached([(_Slow(), "k")], cache, lock)
    pid, _ = compile_quick._holder(lock)
    assert pid != os.getpid() and compile_quick._alive(*compile_quick._holder(lock))
    assert compile_quick.running(cache) == 1
    deadline = time.time() + 120
    while lock.exists() and time.time() < deadline:
        time.sleep(0.2)
    assert not lock.exists(), "the background compiler did not remove its lock"


def test_an_unexpected_cache_failure_is_named_once(caplog):
    """Not a silent slowdown: a cache step that raises is reported (once per step and process)
    and the fit goes on without the cache."""
    compile_cache._FAILED.clear()

    def boom():
        raise KeyError("k")

    try:
        with caplog.at_level(logging.WARNING, logger=LOGGER):
            assert compile_cache._attempt("loading a cache entry", boom) is None
            assert compile_cache._attempt("loading a cache entry", boom) is None
            assert compile_cache._attempt("writing a cache entry", lambda: 3) == 3
        assert _warnings(caplog) == ["warning: compiled-model cache: loading a cache entry failed (KeyError: 'k'); compiling without the cache"]
    finally:
        compile_cache._FAILED.clear()


# --------------------------------------------------------------------------
# quick once per structure and cache, across processes (the marker beside the entry)
# --------------------------------------------------------------------------


@pytest.fixture
def marker_entry(tmp_path, monkeypatch):
    """An entry path in a fresh cache and a clean 'seen' set (as in a new process)."""
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    cache = tmp_path / "cache"
    entry_dir = cache / "entries"
    entry_dir.mkdir(parents=True)
    return cache, entry_dir / "abc.entry"


def test_a_structure_is_quick_once_per_cache_then_compiled(marker_entry, monkeypatch):
    cache, entry = marker_entry
    assert compile_quick.first_time("k", entry, cache)  # first fit anywhere: quick, marked
    marker = entry.with_name(entry.name + compile_quick.MARKER_SUFFIX)
    assert marker.exists() and not entry.exists()
    assert not compile_quick.first_time("k", entry, cache)  # same process: compile (the memo keeps it)
    monkeypatch.setattr(compile_quick, "_SEEN", set())  # a new process, e.g. the next `hlm fit` of a script
    assert not compile_quick.first_time("k", entry, cache)  # marked: compile in the foreground and store
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    other = entry.with_name("def.entry")
    assert compile_quick.first_time("k2", other, cache)  # another structure has its own marker


def test_a_marked_structure_is_quick_again_while_a_background_compiler_fills_it(marker_entry, monkeypatch):
    cache, entry = marker_entry
    assert compile_quick.first_time("k", entry, cache)
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    (lock,) = compile_quick.slot_locks(cache)
    assert compile_quick._take_lock(lock)  # this (live) process holds the background slot
    try:
        assert compile_quick.first_time("k", entry, cache)  # not compiled twice at once
    finally:
        compile_quick._release(lock)
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    assert not compile_quick.first_time("k", entry, cache)


def test_without_a_cache_or_a_writable_one_every_process_is_quick_once(marker_entry, monkeypatch):
    cache, entry = marker_entry
    assert compile_quick.first_time("k", None, None)  # no disk cache: per process only
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    assert compile_quick.first_time("k", None, None)
    monkeypatch.setattr(compile_quick, "_SEEN", set())
    entry.parent.chmod(0o500)
    try:
        if os.access(entry.parent, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root)")
        assert compile_quick.first_time("k", entry, cache)  # cannot mark: quick, no error
        assert not list(entry.parent.iterdir())
    finally:
        entry.parent.chmod(0o700)


def test_markers_are_pruned_oldest_first(marker_entry, monkeypatch):
    cache, entry = marker_entry
    monkeypatch.setattr(compile_quick, "MAX_MARKERS", 2)
    for i, name in enumerate(["a", "b", "c"]):
        monkeypatch.setattr(compile_quick, "_SEEN", set())
        assert compile_quick.first_time(name, entry.with_name(f"{name}.entry"), cache)
        marker = entry.with_name(f"{name}.entry" + compile_quick.MARKER_SUFFIX)
        os.utime(marker, (1_000_000 + i, 1_000_000 + i))
    left = sorted(p.name for p in entry.parent.glob("*" + compile_quick.MARKER_SUFFIX))
    assert left == ["b.entry.quickfit", "c.entry.quickfit"]
