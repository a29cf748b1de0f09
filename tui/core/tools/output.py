"""Caps tool output so one noisy command cannot flood the log or the model's context."""

from __future__ import annotations

OUTPUT_LIMIT = 30_000  # bytes kept of one tool result: the head and the tail


class CappedBuffer:
    """Keeps the first and last ``limit // 2`` bytes fed to it and counts the rest."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def feed(self, data: bytes) -> None:
        half = self.limit // 2
        room = half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if not data:
            return
        self.tail += data
        if len(self.tail) > half:
            cut = len(self.tail) - half
            self.dropped += cut
            del self.tail[:cut]

    def text(self) -> str:
        head = self.head.decode("utf-8", "replace")
        tail = self.tail.decode("utf-8", "replace")
        if self.dropped:
            return f"{head}\n[... {self.dropped} bytes truncated by corral ...]\n{tail}"
        return head + tail


def cap_text(text: str, limit: int = OUTPUT_LIMIT) -> str:
    buffer = CappedBuffer(limit)
    buffer.feed(text.encode("utf-8"))
    return buffer.text()
