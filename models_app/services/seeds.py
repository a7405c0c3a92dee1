"""Seeds drawn from what was labeled, so that the same labels give the same ranking in
any database and in any run of a benchmark."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def labels_seed(labels: Iterable[tuple[str, str]]) -> int:
    """A seed drawn from what was labeled: each image's content hash with its class's
    name, in any order. A benchmark's run seed reaches every later ranking through the
    labels its first ranking chose."""
    digest = hashlib.sha256()
    for content_hash, name in sorted(labels):
        digest.update(f"{content_hash} {name}\n".encode())
    return int.from_bytes(digest.digest()[:4], "big")
