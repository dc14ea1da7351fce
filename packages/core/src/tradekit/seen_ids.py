"""Remembering that an id was seen, in a couple of bytes, for stores that keep the ids
themselves on disk (issue #15: memory must not grow with the number of decisions or orders)."""

from __future__ import annotations


class SeenIds:
    """A set of ids that answers "certainly not seen" or "perhaps seen", in ~2 bytes an id.

    A Bloom filter (16 bits and six positions an id: ~0.1% false "perhaps" when full) that
    adds a filter twice the size whenever the newest is full, so it never gives a wrong "not
    seen" however many ids it takes (a "perhaps" costs the caller a read of the ledger file,
    so the rate matters more than the bytes). The buffered ledger keeps the ids of settled queued buys and
    finished orders here once their rows are written, instead of the ids themselves (a replay
    settles one signal a decision), and the paper broker the ids of its archived orders; each
    confirms a "perhaps" against its file.
    """

    _HASHES = 6
    _BITS_PER_ID = 16

    def __init__(self, capacity: int = 1 << 18) -> None:
        self._filters: list[tuple[bytearray, int]] = []
        self._capacity = capacity
        self._count = 0
        self._grow()

    def _grow(self) -> None:
        bits = self._capacity * self._BITS_PER_ID
        self._filters.append((bytearray((bits + 7) // 8), bits))
        self._count = 0

    def add(self, key: str) -> None:
        if self._count >= self._capacity:
            self._capacity *= 2
            self._grow()
        table, bits = self._filters[-1]
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        first, step = h & 0xFFFF_FFFF, (h >> 32) | 1
        for i in range(self._HASHES):
            p = (first + i * step) % bits
            table[p >> 3] |= 1 << (p & 7)
        self._count += 1

    def __contains__(self, key: str) -> bool:
        h = hash(key) & 0xFFFF_FFFF_FFFF_FFFF
        first, step = h & 0xFFFF_FFFF, (h >> 32) | 1
        for table, bits in self._filters:
            # Most ids asked about are new: the first clear bit answers.
            p = first % bits
            if not table[p >> 3] & (1 << (p & 7)):
                continue
            for i in range(1, self._HASHES):
                p = (first + i * step) % bits
                if not table[p >> 3] & (1 << (p & 7)):
                    break
            else:
                return True
        return False

    @property
    def nbytes(self) -> int:
        return sum(len(table) for table, _ in self._filters)
