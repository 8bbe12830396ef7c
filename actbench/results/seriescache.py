"""A cache of arrays computed once and read again by later calls: what readers parse from the
series files of a results folder (`report.series`), kept beside the columnar index
(`actbench.results.index`) in `<cache>/series/<the index's folder name>/`, and figures computed
from no folder (a fixed-seed simulation's) in `<cache>/computed/`: one file per entry, named by a
digest of its key (a series file's path inside its folder), written only by this tool (signed with
the index's HMAC key) and never believed over its source: an entry is served only for the exact
source it was computed from (a series file's SHA-256, which the reader computes from the bytes it
read through the gate, so a changed, removed or linked file reads as it does without the cache),
or for the file's settled identity (`gate.settled`: device, inode, size and times, recorded when
the bytes were hashed, unchanged since), so an unchanged file is served without being read.

An entry: a 4-byte length, a JSON header (the reader's code, the folder, the key, the source's
digest and settled identity, each array's name, dtype and length), the arrays' bytes (each at a
multiple of 8), and an HMAC-SHA256 of all that. Anything amiss is a miss."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

import msgspec
import numpy as np

from actbench.results import gate, index

FOLDER = "series"
COMPUTED = "computed"
_ALIGN = 8
_MAC = 32


class Header(msgspec.Struct, array_like=True, forbid_unknown_fields=True):
    version: str
    scope: str
    key: str
    source: bytes
    identity: str
    arrays: list[tuple[str, str, int]]


def _padded(n: int) -> int:
    return -n % _ALIGN


class ArrayCache:
    """Signed entries of 1-D arrays in the folder `place` of this user's cache, each named by a
    key and kept for one `source` digest (what the arrays were computed from) of one `scope`, for
    readers whose code is `version` (a digest of the code that computes them: other code never
    reads them)."""

    def __init__(self, place: Path, scope: str, version: str, secret: bytes):
        self.place, self.scope, self.version, self._secret = str(place), scope, version, secret
        self._made = False

    @classmethod
    def series(cls, folder: str | Path, version: str) -> "ArrayCache | None":
        """The cache of the parsed series files of the results folder `folder` (keys: their paths
        inside it); None without a usable key (then nothing is cached)."""
        secret = index.key()
        place = index.cache_root() / FOLDER / index.location(folder).name
        return cls(place, os.path.realpath(folder), version, secret) if secret else None

    @classmethod
    def computed(cls, version: str) -> "ArrayCache | None":
        """The cache of figures computed from no results folder (a simulation's, say); None without a usable key."""
        secret = index.key()
        return cls(index.cache_root() / COMPUTED, COMPUTED, version, secret) if secret else None

    def _name(self, key: str) -> str:
        return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:32]

    def load(self, key: str, source: bytes) -> dict[str, np.ndarray] | None:
        """The arrays kept under `key` for the digest `source` (a series file's: the SHA-256 of
        its bytes); None when there is no entry for exactly that, or it is not one this tool wrote."""
        entry = self._entry(key)
        return entry[0] if entry is not None and entry[1].source == source else None

    def load_settled(self, key: str, identity: str) -> tuple[dict[str, np.ndarray], bytes] | None:
        """(the arrays kept under `key`, the digest of the source they came from) when they were
        stored with the settled identity `identity` (`gate.settled` of the source file now: the
        file is as it was when its bytes were hashed); None otherwise."""
        entry = self._entry(key)
        return (entry[0], entry[1].source) if entry is not None and identity and entry[1].identity == identity else None

    def _entry(self, key: str) -> tuple[dict[str, np.ndarray], Header] | None:
        """The arrays and header of the entry under `key`, when this tool wrote it for this cache's
        scope and code; None otherwise."""
        name = self._name(key)
        try:  # a regular file of the cache's, reached through no link as its last part (its HMAC vouches for the rest)
            fd = os.open(os.path.join(self.place, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            raw = os.read(fd, st.st_size + 1) if stat.S_ISREG(st.st_mode) and st.st_size <= gate.MAX_SERIES else b""
        except OSError:
            return None
        finally:
            os.close(fd)
        if len(raw) < 4 + _MAC or not hmac.compare_digest(raw[-_MAC:], hmac.digest(self._secret, raw[:-_MAC], "sha256")):
            return None
        size = int.from_bytes(raw[:4], "little")
        try:
            head = msgspec.json.decode(raw[4:4 + size], type=Header)
        except (msgspec.DecodeError, msgspec.ValidationError):
            return None
        if (head.version, head.scope, head.key) != (self.version, self.scope, key):
            return None
        at = 4 + size + _padded(4 + size)
        body = bytearray(raw[at:-_MAC])  # writable arrays, as a parse gives
        arrays, at = {}, 0
        try:
            for array, dtype, length in head.arrays:
                kind = np.dtype(dtype)
                if kind.kind not in "fiu":
                    return None
                end = at + kind.itemsize * length
                if end > len(body):
                    return None
                arrays[array] = np.frombuffer(body, kind, length, at)
                at = end + _padded(end)
        except (TypeError, ValueError):
            return None
        return (arrays, head) if at == len(body) else None

    def store(self, key: str, source: bytes, arrays: dict[str, np.ndarray], identity: str | None = None) -> bool:
        """Keep `arrays` (1-D) under `key` as computed from `source`, the bytes of the file whose
        settled `identity` was the same before and after they were read; whether it was written
        (not when the cache cannot be written: it is a cache)."""
        if any(np.ndim(a) != 1 for a in arrays.values()):  # kept as 1-D: another shape would be served reshaped
            return False
        name = self._name(key)
        try:
            head = msgspec.json.encode(Header(self.version, self.scope, key, source, identity or "", [(k, a.dtype.str, len(a)) for k, a in arrays.items()]))
        except (TypeError, ValueError, UnicodeError):  # a key that is not text JSON can hold
            return False
        size = 4 + len(head) + _padded(4 + len(head)) + sum(a.nbytes + _padded(a.nbytes) for a in arrays.values()) + _MAC
        if size > gate.MAX_SERIES:  # `load` would never read it back
            return False
        parts = [len(head).to_bytes(4, "little"), head, bytes(_padded(4 + len(head)))]
        for a in arrays.values():
            data = np.ascontiguousarray(a).tobytes()
            parts += [data, bytes(_padded(len(data)))]
        blob = b"".join(parts)
        try:
            if not self._made:  # once per cache: the folders made private (the one above first) and checked
                index._private_folder(Path(self.place).parent)
                index._private_folder(Path(self.place))
                self._made = True
            dir_fd = os.open(self.place, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError:
            return False
        try:
            index._put(dir_fd, name, blob + hmac.digest(self._secret, blob, "sha256"))
        except OSError:
            return False
        finally:
            os.close(dir_fd)
        return True
