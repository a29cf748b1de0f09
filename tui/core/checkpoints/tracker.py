"""Change tracking: which paths of a workspace may have changed since its last checkpoint.

One ``ChangeFeed`` (an inotify instance and the thread that drains it) serves every
workspace of a checkpointer; each workspace has a ``WorkspaceTracker`` holding its
watches and the paths its events named since the last checkpoint ("dirty" paths).

Watches are put on directories while a scan walks them, each before its listing is read
(``scan.walk``'s ``on_dir``), so whatever changes after a directory was read raises an
event. A directory that appears (created, or moved in) is flagged: its subtree is
rescanned at the next checkpoint, since what was made in it before its watch existed
raised no event.

The barrier makes the dirty set exact at a moment: it creates a file in a private
directory watched by the same instance and waits for that event. Events of one instance
are queued in the order their changes happened, so when the sentinel's arrives, every
change made before the barrier has been read. A tracker that cannot vouch for its set
says why (``lost``): the kernel overflowed its queue, a watch could not be added (the
limit), the workspace itself went away, or the reader died. Its next checkpoint is then
a full scan, which also arms it again.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import shutil
import tempfile
import threading

from tui.core.checkpoints.inotify import (
    IN_CREATE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MOVE_SELF,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    IN_UNMOUNT,
    Event,
    Inotify,
)
from tui.core.checkpoints.manifests import Manifest

log = logging.getLogger(__name__)

OVERFLOW = "the kernel's inotify queue overflowed: events were lost"
WATCH_LIMIT = "the inotify watch limit is reached (fs.inotify.max_user_watches)"
MAX_DIRTY = 1_000_000  # paths kept between two checkpoints; past it a full scan is cheaper
TOO_MANY = f"more than {MAX_DIRTY} paths changed since the last checkpoint"


class WorkspaceTracker:
    """The dirty paths of one workspace. Its fields are guarded by the feed's lock."""

    def __init__(self, feed: ChangeFeed, root: str) -> None:
        self.feed = feed
        self.root = root
        # path -> True when a directory arrived there (its subtree is rescanned).
        self.dirty: dict[str, bool] = {}
        self.lost: str | None = None  # why the dirty set cannot be trusted, if it cannot
        self.wds: dict[int, str] = {}  # watch -> its directory's path ("" the root)
        self.added: set[int] = set()  # watches (re)added since ``begin``
        self.closed = False

    def watch_dir(self, dir_fd: int, rel: str) -> None:
        """``scan.walk``'s ``on_dir``: watch this directory before it is listed."""
        self.feed.add_watch(self, dir_fd, rel)

    def begin(self, *, full: bool) -> tuple[dict[str, bool], str | None]:
        """Take the dirty set (and why it cannot be trusted, if so) and start a new one.
        ``full``: a full scan follows, which re-arms the tracker."""
        with self.feed.lock:
            dirty, lost = self.dirty, self.lost
            self.dirty = {}
            self.added = set()
            if full:
                self.lost = None
            return dirty, lost

    def give_back(self, dirty: dict[str, bool]) -> None:
        """Put paths taken by ``begin`` back (they were looked at, not checkpointed)."""
        with self.feed.lock:
            for path, arrived in dirty.items():
                self.dirty[path] = self.dirty.get(path, False) or arrived

    def lose(self, why: str) -> None:
        with self.feed.lock:
            self._lose(why)

    def _lose(self, why: str) -> None:
        if self.lost is None:
            self.lost = why

    def prune(self, manifest: Manifest | None = None) -> None:
        """Drop watches not (re)added since ``begin`` whose directory is no longer one of
        the workspace's (moved out or replaced); without ``manifest`` (after a full scan,
        which re-adds every watch it needs) all of them."""
        with self.feed.lock:
            stale = [
                wd
                for wd, rel in self.wds.items()
                if wd not in self.added
                and (manifest is None or (rel and manifest.get(rel, ("",))[0] != "d"))
            ]
        for wd in stale:
            self.feed.drop_watch(self, wd)

    def close(self) -> None:
        self.closed = True
        for wd in list(self.wds):
            self.feed.drop_watch(self, wd)


class ChangeFeed:
    """An inotify instance, its reader thread, and the barrier."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self._arrived = threading.Condition(self.lock)
        self._ino = Inotify()
        self._owners: dict[int, dict[WorkspaceTracker, str]] = {}
        self._trackers: set[WorkspaceTracker] = set()
        self._issued = 0
        self._seen = 0
        self.dead: str | None = None
        self._private = tempfile.mkdtemp(prefix="corral-changes-")
        try:
            self._sentinel_wd = self._ino.watch_path(self._private, IN_CREATE)
            self._wake_r, self._wake_w = os.pipe2(os.O_CLOEXEC)
        except OSError:
            self._ino.close()
            shutil.rmtree(self._private, ignore_errors=True)
            raise
        self._thread = threading.Thread(target=self._run, name="corral-changes", daemon=True)
        self._thread.start()

    def tracker(self, root: str) -> WorkspaceTracker:
        tracker = WorkspaceTracker(self, root)
        with self.lock:
            self._trackers.add(tracker)
            if self.dead:
                tracker._lose(self.dead)
        return tracker

    def forget(self, tracker: WorkspaceTracker) -> None:
        tracker.close()
        with self.lock:
            self._trackers.discard(tracker)

    def add_watch(self, tracker: WorkspaceTracker, dir_fd: int, rel: str) -> None:
        if tracker.lost is not None or tracker.closed:
            return  # the next checkpoint walks (and watches) again anyway
        try:
            wd = self._ino.watch_fd(dir_fd)
        except OSError as exc:
            tracker.lose(
                WATCH_LIMIT
                if exc.errno == errno.ENOSPC
                else f"cannot watch {rel or 'the workspace'!r}: {exc.strerror}"
            )
            return
        with self.lock:
            self._owners.setdefault(wd, {})[tracker] = rel
            tracker.wds[wd] = rel
            tracker.added.add(wd)

    def drop_watch(self, tracker: WorkspaceTracker, wd: int) -> None:
        with self.lock:
            tracker.wds.pop(wd, None)
            owners = self._owners.get(wd)
            if owners is None:
                return
            owners.pop(tracker, None)
            if owners:
                return
            del self._owners[wd]
        self._ino.unwatch(wd)

    def barrier(self, timeout_s: float) -> bool:
        """True once every event raised before this call has been read; False when that
        could not be confirmed within ``timeout_s`` (or the feed is dead)."""
        with self.lock:
            if self.dead:
                return False
            self._issued += 1
            number = self._issued
        path = os.path.join(self._private, f"b{number}")
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))
            os.unlink(path)
        except OSError as exc:
            log.warning("change feed: cannot write its barrier file: %s", exc)
            return False
        with self._arrived:
            return (
                self._arrived.wait_for(
                    lambda: self._seen >= number or self.dead is not None, timeout_s
                )
                and not self.dead
            )

    def close(self) -> None:
        with self.lock:
            if self.dead == "closed":
                return
            self.dead = "closed"
            for tracker in self._trackers:
                tracker._lose("the change feed was closed")
            self._arrived.notify_all()
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"x")
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._ino.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
        shutil.rmtree(self._private, ignore_errors=True)

    # -- the reader thread ---------------------------------------------------------------

    def _run(self) -> None:
        try:
            poller = select.poll()
            poller.register(self._ino.fd, select.POLLIN)
            poller.register(self._wake_r, select.POLLIN)
            while True:
                ready = poller.poll()
                if any(fd == self._wake_r for fd, _ in ready):
                    return
                while events := self._ino.read():
                    self._dispatch(events)
        except Exception as exc:  # the trackers must hear of it, whatever it is
            log.error("change feed: its reader failed: %s", exc, exc_info=exc)
            with self.lock:
                self.dead = f"the change feed's reader failed: {exc}"
                for tracker in self._trackers:
                    tracker._lose(self.dead)
                self._arrived.notify_all()

    def _dispatch(self, events: list[Event]) -> None:
        with self.lock:
            for event in events:
                self._one(event)
            self._arrived.notify_all()

    def _one(self, event: Event) -> None:
        wd, mask, raw = event
        if mask & IN_Q_OVERFLOW:
            for tracker in self._trackers:
                tracker._lose(OVERFLOW)
            # A barrier's own event may be among those lost, and then would never come:
            # every barrier issued so far is answered (its checkpoint walks: all are lost).
            self._seen = max(self._seen, self._issued)
            return
        if wd == self._sentinel_wd:
            if mask & IN_CREATE and raw[:1] == b"b" and raw[1:].isdigit():
                self._seen = max(self._seen, int(raw[1:]))
            return
        owners = self._owners.get(wd)
        if not owners:
            return
        if mask & IN_IGNORED:  # the directory is gone (or we dropped the watch)
            for tracker in owners:
                if tracker.wds.pop(wd, None) == "":
                    tracker._lose("the workspace directory itself was removed")
            del self._owners[wd]
            return
        if mask & IN_UNMOUNT:
            for tracker in owners:
                tracker._lose("a file system under the workspace was unmounted")
            return
        name = os.fsdecode(raw)
        arrived = bool(mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO))
        for tracker, rel in owners.items():
            if tracker.lost is not None:
                continue  # its next checkpoint walks the tree: nothing to keep
            if name:
                path = f"{rel}/{name}" if rel else name
            elif rel:
                path = rel  # the directory itself: its mode, or it moved or went
            else:
                if mask & (IN_DELETE_SELF | IN_MOVE_SELF):
                    tracker._lose("the workspace directory itself was moved or removed")
                continue  # the root has no entry of its own
            tracker.dirty[path] = tracker.dirty.get(path, False) or arrived
            if len(tracker.dirty) > MAX_DIRTY:
                tracker._lose(TOO_MANY)
                tracker.dirty = {}
