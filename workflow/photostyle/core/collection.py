"""Photo ids, shards, folder units and the per-shard listings the DAG is built from.

Scale design (100k photos x several styles):

* The Snakefile scans ``content_dir`` once per invocation (names, sizes and modification
  times only; no file is read) and writes one small listing file per shard with
  :func:`sync_listings`. A listing is rewritten only when its shard's files changed, so
  Snakemake reruns exactly the shards whose photos were added, removed or edited.
* Shards are content-defined and folder-local: photos are ordered by a hash of their folder
  (the relative path's parent), then by a hash of their relative path, and a photo whose path
  hash satisfies ``boundary(hash) % shard_size == 0`` starts a new shard named after it.
  Adding a photo therefore changes only the shard it falls into (or splits that one shard in
  two when the new photo is itself a boundary); no other shard moves. Shard sizes follow a
  geometric distribution with mean ``shard_size``. A folder's photos are contiguous in that
  order, so a folder of F photos spans about ``F / shard_size + 1`` shards and a shard holds
  photos of few folders: a per-folder job (one colour transform per photo shoot,
  :func:`unit_id`, :func:`folder_shards`) reads a few shards, not all of them. A collection
  whose photos all sit in one folder gets exactly the shards of the earlier, path-only order.
* The key is the relative path, not the file's content hash: hashing 100k files at every
  DAG build would read the whole collection. Content hashes are still computed by ingest
  and recorded in the manifest; a changed file changes its listing (size, mtime).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import re
import unicodedata
from typing import NamedTuple
from pathlib import Path

from photostyle.core.io import write_if_changed

HEAD_SHARD = "00000000"
COLLECTION_UNIT = "collection"  # the unit id of the whole collection; folder ids hold "-" + 8 hex
LISTING_HEADER = ("relpath", "size", "mtime_ns")
_SLUG_BAD = re.compile(r"[^A-Za-z0-9]+")


class Entry(NamedTuple):  # a tuple: 100k of them are made while the DAG builds
    relpath: str  # POSIX, NFC-normalised, relative to the collection root
    size: int
    mtime_ns: int


def _norm(relpath: str) -> str:
    if os.sep != "/":
        relpath = relpath.replace(os.sep, "/")
    return relpath if relpath.isascii() else unicodedata.normalize("NFC", relpath)


def photo_id(relpath: str) -> str:
    """A stable id that is safe as a file name and a Snakemake wildcard.

    ASCII slug of the file stem (accents folded, anything else becomes ``_``, at most 40
    characters) plus 12 hex digits of the relative path's SHA-1 (48 bits: a collision
    among 100k photos has odds of about 1 in 50,000, and ingest checks for it), so equal stems in different
    folders differ and ``../`` or separators can never reach a path.
    """
    rel = _norm(relpath)
    digest = hashlib.sha1(rel.encode("utf-8")).hexdigest()[:12]
    return f"{slug_of(rel)}-{digest}"


def slug_of(relpath: str) -> str:
    """ASCII slug of the file stem: accents folded, anything else ``_``, at most 40 characters."""
    stem = _norm(relpath).rsplit("/", 1)[-1]
    if "." in stem.lstrip("."):
        stem = stem[: stem.rfind(".")]
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    return _SLUG_BAD.sub("_", ascii_stem).strip("_")[:40] or "photo"


def style_ids(relpaths) -> dict[str, str]:
    """Relative path -> style id: the slug of the file stem (``golden_hour``), with the 12-hex
    digest of :func:`photo_id` only for styles whose slugs are equal (ignoring case, so ids stay
    distinct as folder names on case-insensitive file systems), all of them: the ids depend on
    the set of style files only, never on the order they are found in. A bare slug has no ``-``,
    so it never equals a digested id."""
    slugs = {rel: slug_of(rel) for rel in relpaths}
    count: dict[str, int] = {}
    for slug in slugs.values():
        count[slug.lower()] = count.get(slug.lower(), 0) + 1
    return {rel: slug if count[slug.lower()] == 1 else photo_id(rel) for rel, slug in slugs.items()}


def folder_of(relpath: str) -> str:
    """The folder of a relative path (NFC, POSIX): ``"a/b"`` for ``"a/b/c.jpg"``, ``""`` for a
    file at the top of the collection."""
    return _norm(relpath).rpartition("/")[0]


def unit_id(folder: str) -> str:
    """A stable id of a folder (a photo shoot) that is safe as a file name and a Snakemake
    wildcard: ASCII slug of the folder path (accents folded, any run of other characters,
    ``/`` included, becomes ``_``, at most 40 characters; ``root`` for the top folder ``""``,
    ``folder`` when nothing of the name is ASCII) plus ``-`` and 8 hex digits of the SHA-1 of
    ``"folder:" + folder`` (NFC), so folders with equal slugs differ (32 bits: two such folders
    clash with odds of about 1 in 4 billion) and the id never holds ``/`` or ``..``. It never
    equals :data:`COLLECTION_UNIT` (which has no ``-``)."""
    folder = _norm(folder)
    digest = hashlib.sha1(b"folder:" + folder.encode("utf-8")).hexdigest()[:8]
    if not folder:
        return f"root-{digest}"
    ascii_path = unicodedata.normalize("NFKD", folder).encode("ascii", "ignore").decode()
    slug = _SLUG_BAD.sub("_", ascii_path).strip("_")[:40].rstrip("_") or "folder"
    return f"{slug}-{digest}"


def folder_shards(shards) -> dict[str, list[str]]:
    """Folder -> the sorted names of the shards that hold its photos, from shard -> entries
    (:class:`Entry` tuples or plain relative paths, as :func:`sync_listings` and
    :func:`assign_shards` return them). Folders are listed in sorted order."""
    by_folder: dict[str, set[str]] = {}
    for shard, members in shards.items():
        for member in members:
            rel = member if isinstance(member, str) else member[0]
            by_folder.setdefault(folder_of(rel), set()).add(shard)
    return {folder: sorted(by_folder[folder]) for folder in sorted(by_folder)}


def assign_shards(relpaths, shard_size: int) -> dict[str, list[str]]:
    """Group relative paths into content-defined, folder-local shards (see module docstring).

    Paths are ordered by the first 8 bytes of the SHA-256 of ``"folder:" + folder`` (the
    path's parent, :func:`folder_of`), then by the SHA-256 of ``"shard:" + relpath``; a path
    whose path digest bytes 4-11 (hex digits 8-23), read as a big-endian integer, are divisible
    by ``shard_size`` starts a shard named by hex digits 0-7 of its path digest; paths before
    the first boundary go to :data:`HEAD_SHARD`. With a single folder this is the path order
    alone, so flat collections keep the shards of the earlier, path-only rule."""
    if shard_size < 1:
        raise ValueError("shard_size must be >= 1")
    sha256 = hashlib.sha256
    folder_keys: dict[str, bytes] = {}  # each folder hashed once: this runs at every DAG build
    keyed: dict[bytes, str] = {}  # 8-byte folder digest + 32-byte path digest -> path as given
    for p in relpaths:
        rel = p if p.isascii() else _norm(p)
        folder = rel.rpartition("/")[0]
        fkey = folder_keys.get(folder)
        if fkey is None:
            fkey = folder_keys[folder] = sha256(b"folder:" + folder.encode("utf-8")).digest()[:8]
        keyed[fkey + sha256(b"shard:" + rel.encode("utf-8")).digest()] = p
    shards: dict[str, list[str]] = {}
    current = HEAD_SHARD
    members = shards.setdefault(current, [])
    from_bytes = int.from_bytes
    for key in sorted(keyed):  # sorted by bytes: folder digest, then path digest
        rel = keyed[key]
        if shard_size == 1 or from_bytes(key[12:20], "big") % shard_size == 0:  # path digest bytes 4-11
            current = key[8:12].hex()  # path digest bytes 0-3
            members = shards.setdefault(current, [])
        members.append(rel)
    return {s: m for s, m in shards.items() if m}


def scan_collection(root: str | os.PathLike, *, sort: bool = True) -> list[Entry]:
    """Every entry below ``root`` that is not a folder, sorted by path: regular files, links
    (to files, to folders, dangling), FIFOs, sockets, devices, files we may not read. Nothing is
    dropped here: ingest accepts or rejects each with a reason. Real folders are walked; links to
    folders are not followed (they could leave the collection or loop)."""
    root = Path(root)
    if not root.is_dir():
        return []
    entries: list[Entry] = []
    stack = [(str(root), "")]  # (folder, its path relative to root with a trailing "/")
    while stack:
        folder, prefix = stack.pop()
        try:
            listing = list(os.scandir(folder))
        except OSError:  # an unreadable folder: listed as one entry, so ingest reports it
            entries.append(Entry(_norm(prefix.rstrip("/") or "."), -1, -1))
            continue
        for de in listing:
            try:
                if de.is_dir(follow_symlinks=False):
                    stack.append((de.path, f"{prefix}{de.name}/"))
                    continue
                st = de.stat(follow_symlinks=True)
                size, mtime = st.st_size, st.st_mtime_ns
            except OSError:
                size = mtime = -1  # dangling link or vanished file: ingest will report it
            rel = prefix + de.name
            entries.append(Entry(rel if rel.isascii() else _norm(rel), size, mtime))
    if sort:
        entries.sort()  # by relpath (the first field; relpaths are unique)
    return entries


def not_a_photo_file(path: Path) -> str | None:
    """Why ``path`` must not be opened as a photo (a dangling link, a link to a folder, a FIFO,
    a socket, a device, a folder we may not list), or None for a regular file (or a link to one)."""
    import stat

    try:
        lst = os.lstat(path)
    except OSError as exc:
        return f"vanished: {exc.strerror or exc}"
    if stat.S_ISLNK(lst.st_mode):
        target = os.readlink(path)
        try:
            st = os.stat(path)
        except OSError:
            return f"broken symbolic link (its target {target!r} does not exist)"
        if stat.S_ISDIR(st.st_mode):
            return f"symbolic link to a folder ({target!r}): links to folders are not followed"
        mode = st.st_mode
    else:
        mode = lst.st_mode
    kinds = {stat.S_ISFIFO: "a named pipe (FIFO)", stat.S_ISSOCK: "a socket", stat.S_ISCHR: "a character device",
             stat.S_ISBLK: "a block device", stat.S_ISDIR: "a folder that cannot be listed"}
    for test, what in kinds.items():
        if test(mode):
            return f"not a regular file: {what}; never opened"
    return None


def listing_text(entries) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(LISTING_HEADER)
    w.writerows(entries)  # Entry is a (relpath, size, mtime_ns) tuple
    return buf.getvalue()


def read_listing(path: str | os.PathLike) -> list[Entry]:
    with open(path, newline="", encoding="utf-8") as fh:
        return [
            Entry(r["relpath"], int(r["size"]), int(r["mtime_ns"])) for r in csv.DictReader(fh)
        ]


def sync_listings(root, listing_dir, shard_size: int = 1, per_file: bool = False) -> dict[str, list[Entry]]:
    """Scan ``root`` and bring ``listing_dir/<shard>.csv`` up to date.

    Unchanged listings are not touched (their mtime is kept); listings of shards that no
    longer exist are removed. ``per_file`` gives every file a shard of its own, named by its
    style id (:func:`style_ids`; used for style photos: each style is a wildcard, and adding a style must not
    rerun the others). Returns shard -> entries.
    """
    entries = scan_collection(root, sort=False)  # each shard's entries are sorted below
    by_path = {e.relpath: e for e in entries}
    if per_file:
        groups = {sid: [rel] for rel, sid in style_ids([e.relpath for e in entries]).items()}
    else:
        groups = assign_shards(by_path, shard_size)
    listing_dir = Path(listing_dir)
    listing_dir.mkdir(parents=True, exist_ok=True)
    shards = {s: [by_path[p] for p in sorted(rels)] for s, rels in groups.items()}
    for shard, shard_entries in shards.items():
        write_if_changed(listing_dir / f"{shard}.csv", listing_text(shard_entries))
    for stale in listing_dir.glob("*.csv"):
        if stale.stem not in shards:
            stale.unlink()
    return shards


def training_subset(entries: list[Entry], max_images: int) -> list[Entry]:
    """The ``max_images`` files with the smallest hash of their relative path: a fixed,
    content-defined sample, so adding one photo to a large collection changes the training set
    only if its hash falls among the smallest (probability ``max_images / n``)."""
    key = lambda e: hashlib.sha256(("train:" + e.relpath).encode("utf-8")).hexdigest()  # noqa: E731
    return sorted(sorted(entries, key=key)[:max_images], key=lambda e: e.relpath)


def sync_training_listing(root, listing: str | os.PathLike, max_images: int) -> list[Entry]:
    """Write (if changed) the listing of the training subset of ``root``."""
    chosen = training_subset(scan_collection(root), max_images)
    write_if_changed(listing, listing_text(chosen))
    return chosen
