"""Blob storage for inputs, chunk parts and outputs: one small interface over fsspec.

Keys are ``/``-separated paths relative to the storage root; the root is a local folder by
default or any fsspec URL (``s3://bucket/prefix``, with the ``s3`` extra) for scale-out. S3
credentials, endpoint and retries come from the usual ``AWS_*`` environment variables, so
every worker process configures itself the same way.
"""

from __future__ import annotations

import contextlib
import posixpath
import uuid
from collections.abc import Iterator
from typing import IO, Any, BinaryIO, cast

import fsspec


class BlobStorage:
    """Read, write, list and delete blobs under one root."""

    def __init__(self, url: str, **options: Any) -> None:
        self.url = url
        fs, root = fsspec.core.url_to_fs(url, **options)
        self._fs: Any = fs
        self._root: str = root.rstrip("/")
        if self._is_local:
            self._fs.makedirs(self._root, exist_ok=True)

    @property
    def _is_local(self) -> bool:
        protocol = self._fs.protocol
        return "file" in (protocol if isinstance(protocol, tuple) else (protocol,))

    def path(self, key: str) -> str:
        return posixpath.join(self._root, key)

    def open_read(self, key: str) -> BinaryIO:
        return cast(BinaryIO, self._fs.open(self.path(key), "rb"))

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        """Write a blob atomically: readers see the old blob or the whole new one, never half.

        A re-run that writes the same key replaces the blob, which keeps chunk outputs idempotent.
        """
        final = self.path(key)
        if self._is_local:
            self._fs.makedirs(posixpath.dirname(final), exist_ok=True)
            temp = f"{final}.{uuid.uuid4().hex}.tmp"
            try:
                with self._fs.open(temp, "wb") as handle:
                    yield handle
                self._fs.mv(temp, final)
            finally:
                if self._fs.exists(temp):
                    self._fs.rm(temp)
        else:
            # An object store publishes an object only when its upload completes (large ones
            # go up in parts); a failed write aborts the upload, so no partial blob appears.
            handle = self._fs.open(final, "wb")
            try:
                yield handle
            except BaseException:
                handle.discard()
                handle.closed = True  # else closing it (even on collection) would publish it
                raise
            handle.close()
            self._fs.invalidate_cache(final)

    def write_bytes(self, key: str, data: bytes) -> None:
        with self.open_write(key) as handle:
            handle.write(data)

    def _forget_listings(self, path: str) -> None:
        """Drop cached listings: another process may have written since they were read."""
        if not self._is_local:
            self._fs.invalidate_cache(path)

    def exists(self, key: str) -> bool:
        self._forget_listings(self.path(key))
        return bool(self._fs.exists(self.path(key)))

    def size(self, key: str) -> int:
        self._forget_listings(self.path(key))
        return int(self._fs.size(self.path(key)))

    def list(self, prefix: str) -> list[str]:
        """Keys under ``prefix``, sorted (chunk parts are named so that sorted = input order)."""
        base = self.path(prefix)
        self._forget_listings(base)
        if not self._fs.exists(base):
            return []
        keys = []
        for full in self._fs.find(base):
            if not full.endswith(".tmp"):
                keys.append(posixpath.relpath(full, self._root))
        return sorted(keys)

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._fs.rm(self.path(key))

    def delete_prefix(self, prefix: str) -> None:
        """Delete every blob under ``prefix``, tolerating writers that add or remove files
        meanwhile (a worker finishing a chunk of a job being deleted)."""
        base = self.path(prefix)
        for _ in range(5):
            self._forget_listings(base)
            if not self._fs.exists(base):
                return
            try:
                self._fs.rm(base, recursive=True)
            except (FileNotFoundError, OSError):
                continue
