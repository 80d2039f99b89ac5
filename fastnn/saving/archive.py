"""The model file as a container: one zip of ``model.json`` and ``.npy`` arrays.

Writing goes to a temporary file beside the target, then ``os.replace``, so a
crash never leaves a half-written file where a good one was (how, with
symlinks, modes and stale temporaries: fastnn.saving.atomic_write). Reading
trusts nothing: only a regular file is opened (a FIFO or /dev/zero would
never end); ``model.json`` has caps on its size, its number of values and
its depth (MAX_JSON_BYTES, MAX_JSON_ITEMS, MAX_JSON_DEPTH); every array entry
must be stored uncompressed with a declared size matching its manifest shape
(checked before anything is read); the entries together must fit in the file
(so overlapping entries cannot multiply it); every array's header, shape,
dtype, CRC and finiteness are checked. Any problem is a ``ValueError`` saying
what is wrong. What the document means is fastnn.saving.config's business.
"""
import contextlib
import json
import math
import os
import stat
import zipfile
import zlib

import numpy as np

from fastnn import _version
from fastnn.saving.atomic_write import file_kind, replace_file

FORMAT = "fastnn"
# Version 2 describes any graph (nodes and their inbound tensors); version 1
# (fastnn 0.1, Sequential models only) is still read.
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MODEL_JSON = "model.json"

# Bounds on model.json, checked before it is parsed (bytes, items) and right
# after (depth), so that the memory parsing takes stays proportional to what a
# real model of that size needs (about 1 KB and 60 items a layer, nesting 3
# levels deeper per nested model), generously above fastnn.saving.config's
# MAX_LAYERS and MAX_NESTING. Without the item bound a 64 KB zip holding a
# 64 MB model.json of empty objects, [{},{},...], makes json build 21 million
# dicts (1.7 GB); with it, at most MAX_JSON_ITEMS values are ever built.
MAX_JSON_BYTES = 64 << 20
MAX_JSON_ITEMS = 2_000_000      # array elements and object members, in all
MAX_JSON_DEPTH = 200            # arrays and objects inside each other
# An .npy entry is its array's bytes plus a header numpy caps at 10000
# characters (we pass that cap on), padded to 64 bytes, plus magic and length.
_NPY_MAX_HEADER = 10000
_NPY_HEADER_ALLOWANCE = _NPY_MAX_HEADER + 256
# Arrays are stored little-endian whatever the machine, so files move freely.
ARRAY_DTYPES = {"float32": np.dtype("<f4"), "float64": np.dtype("<f8")}
# Entries past this size need zip64 records, which zipfile must know up front.
_ZIP64_LIMIT = (1 << 31) - (1 << 20)


def write_archive(filepath, document, arrays, overwrite):
    path = as_path(filepath)
    if not overwrite and os.path.exists(path):
        raise FileExistsError(f"{path} exists and overwrite=False")
    try:
        text = json.dumps(document, indent=1, allow_nan=False, default=_json_scalar)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot save to {path}: the configuration is not JSON data "
                         f"({error})") from error

    payload = text.encode("utf-8")
    try:
        # what load_model would refuse is never written
        _check_json_size(len(payload))
        _check_json_items(payload)
        _check_json_depth(document)
    except ValueError as error:
        raise ValueError(f"cannot save to {path}: the model is too large for a fastnn "
                         f"file: {error}") from None

    def write(stream):
        with zipfile.ZipFile(stream, "w") as archive:
            _write_entry(archive, MODEL_JSON, zipfile.ZIP_DEFLATED,
                         lambda out: out.write(payload), len(payload))
            for name, array in arrays:
                array = np.ascontiguousarray(array, dtype=ARRAY_DTYPES[array.dtype.name])
                _write_entry(archive, name, zipfile.ZIP_STORED,
                             lambda out, a=array: np.lib.format.write_array(
                                 out, a, allow_pickle=False), array.nbytes)

    replace_file(path, write)


def _json_scalar(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} {value!r} is not JSON serializable")


def _write_entry(archive, name, compression, write, size):
    # A fixed timestamp makes saving the same model twice give the same bytes.
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    with archive.open(info, "w", force_zip64=size > _ZIP64_LIMIT) as out:
        write(out)


# ============================================================================
# Reading
# ============================================================================
@contextlib.contextmanager
def reading(path):
    """Prefix every ValueError about the file's contents with the file's name."""
    try:
        yield
    except ValueError as error:
        raise ValueError(f"cannot load {path}: {error}") from error


# What zipfile and zlib raise on a damaged archive (RuntimeError: an encrypted
# entry; NotImplementedError: an unknown compression method).
_DAMAGED = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError,
            OverflowError)


class Archive:
    """An open, checked model file: its parsed ``document`` and its array entries."""

    def __init__(self, path):
        self.path = path
        self._file = _open_regular_file(path)
        try:
            self.size = os.fstat(self._file.fileno()).st_size
            try:
                self._zip = zipfile.ZipFile(self._file)
            except _DAMAGED + (ValueError, OSError) as error:
                raise ValueError(f"not a fastnn model file, or truncated (not a readable zip: "
                                 f"{error})") from None
            self._entries = self._index()
            self.document = self._read_document()
        except BaseException:
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        zf = getattr(self, "_zip", None)
        if zf is not None:
            zf.close()
        self._file.close()

    def _index(self):
        infos = self._zip.infolist()
        entries = {info.filename: info for info in infos}
        if len(entries) != len(infos):
            raise ValueError("the zip has duplicate entry names (tampered)")
        return entries

    def _read_document(self):
        info = self._entries.get(MODEL_JSON)
        if info is None:
            raise ValueError(f"not a fastnn model file (the zip has no {MODEL_JSON})")
        _check_json_size(info.file_size, "declares ")
        raw = self._read_entry(info, MAX_JSON_BYTES + 1)
        _check_json_size(len(raw))          # a declared size that lies
        _check_json_items(raw)
        try:
            document = json.loads(raw)
        except (ValueError, RecursionError) as error:
            raise ValueError(f"{MODEL_JSON} is not valid JSON ({error})") from None
        _check_json_depth(document)
        _check_document(document)
        return document

    def _read_entry(self, info, limit):
        _check_not_encrypted(info)
        try:
            with self._zip.open(info) as stream:
                return stream.read(limit)
        except _DAMAGED + (OSError,) as error:
            raise ValueError(f"entry {info.filename} is damaged ({error})") from None

    def check_entries(self, entries):
        """Check every array entry's size and storage before anything is read.

        ``entries`` lists (entry name, declared bytes, description). Together
        the entries must fit in the file: memory used while reading is then
        bounded by the file's size, whatever its headers claim.
        """
        total = 0
        for name, nbytes, what in entries:
            info = self._entries.get(name)
            if info is None:
                raise ValueError(f"{what}: entry {name} is missing (truncated or tampered file)")
            _check_not_encrypted(info)
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{what}: entry {name} is compressed; fastnn stores arrays "
                                 "uncompressed (a compressed entry could expand far beyond "
                                 "the file)")
            if not nbytes < info.file_size <= nbytes + _NPY_HEADER_ALLOWANCE:
                raise ValueError(f"{what}: entry {name} declares {info.file_size} bytes, but "
                                 f"its shape and dtype need {nbytes} bytes of data (tampered "
                                 "or oversized file)")
            if info.header_offset + info.compress_size > self.size:
                raise ValueError(f"{what}: entry {name} runs past the end of the file "
                                 "(truncated file)")
            total += info.file_size
        if total > self.size:
            raise ValueError(f"the arrays declare {total} bytes in all but the file has "
                             f"{self.size} (overlapping entries: tampered file)")

    def read_array(self, name, shape, dtype, what):
        """The array stored in entry ``name``; it must have ``shape``, ``dtype`` and be finite."""
        info = self._entries[name]
        try:
            with self._zip.open(info) as stream:
                _check_npy_header(stream, shape, dtype)
            with self._zip.open(info) as stream:
                array = np.load(stream, allow_pickle=False, max_header_size=_NPY_MAX_HEADER)
                trailing = stream.read(1)     # reaching the end also checks the CRC
        except _DAMAGED + (OSError,) as error:
            raise ValueError(f"{what}: entry {name} is damaged ({error})") from None
        except ValueError as error:
            raise ValueError(f"{what}: entry {name}: {error}") from None
        if trailing or array.shape != shape or array.dtype != dtype:
            raise ValueError(f"{what}: entry {name} does not hold exactly a {dtype.name} "
                             f"array of shape {shape}")
        if not np.isfinite(array).all():
            raise ValueError(f"{what}: entry {name} contains NaN or inf")
        return array


def _check_json_size(size, verb="holds "):
    if size > MAX_JSON_BYTES:
        raise ValueError(f"{MODEL_JSON} {verb}{size} bytes, over the {MAX_JSON_BYTES}-byte "
                         "limit (fastnn.saving.archive.MAX_JSON_BYTES)")


def _check_json_items(raw):
    """Refuse JSON text that would make more than MAX_JSON_ITEMS values, before parsing.

    Every array element and object member but a container's first follows a
    comma, so commas plus containers bounds their number from above (commas
    and brackets inside strings only make the bound larger): C-speed counts,
    no parse.
    """
    items = raw.count(b",") + raw.count(b"[") + raw.count(b"{")
    if items > MAX_JSON_ITEMS:
        raise ValueError(f"{MODEL_JSON} holds up to {items} values, over the limit of "
                         f"{MAX_JSON_ITEMS} (fastnn.saving.archive.MAX_JSON_ITEMS)")


def _check_json_depth(document):
    """Refuse a document nested more than MAX_JSON_DEPTH deep (what reads it later
    may recurse over it). Walks the containers without recursing itself."""
    pending = [(document, 1)] if isinstance(document, (dict, list)) else []
    while pending:
        value, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise ValueError(f"{MODEL_JSON} is nested more than {MAX_JSON_DEPTH} deep "
                             "(fastnn.saving.archive.MAX_JSON_DEPTH)")
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children
                       if isinstance(child, (dict, list)))


def _open_regular_file(path):
    """``path`` opened for reading, if it is a regular file.

    A FIFO, a device or a directory is a ValueError naming what it is: opening
    a FIFO would wait for a writer, and /dev/zero never ends. The file is
    opened without blocking and checked again once open, in case it was
    swapped for something else in between. A missing file is
    FileNotFoundError, as usual.
    """
    _require_regular_file(os.stat(path).st_mode)
    nonblocking = getattr(os, "O_NONBLOCK", 0)
    fd = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_BINARY", 0))
    try:
        _require_regular_file(os.fstat(fd).st_mode)
        if nonblocking:
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _require_regular_file(mode):
    if not stat.S_ISREG(mode):
        raise ValueError(f"it is {file_kind(mode)}, not a regular file (fastnn reads "
                         "models from regular files only)")


def _check_not_encrypted(info):
    if info.flag_bits & 0x1:
        raise ValueError(f"entry {info.filename} is encrypted; fastnn files never are")


def _check_npy_header(stream, shape, dtype):
    """Refuse an .npy entry whose header is not exactly the manifest's array.

    np.load allocates what the header declares before reading the data, so the
    header is checked first; object dtypes (pickles) never get as far as np.load.
    """
    version = np.lib.format.read_magic(stream)
    if version == (1, 0):
        header = np.lib.format.read_array_header_1_0(stream, max_header_size=_NPY_MAX_HEADER)
    elif version == (2, 0):
        header = np.lib.format.read_array_header_2_0(stream, max_header_size=_NPY_MAX_HEADER)
    else:
        raise ValueError(f"not a valid .npy array (unsupported version {version})")
    stored_shape, fortran_order, stored_dtype = header
    if stored_shape != shape or stored_dtype != dtype or fortran_order:
        raise ValueError(f"the file's manifest says a {dtype.name} array of shape "
                         f"{shape}, but the entry holds {stored_dtype} of shape {stored_shape}"
                         f"{' (Fortran order)' if fortran_order else ''}")


# ---- the document ------------------------------------------------------------
def _check_document(document):
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise ValueError(f"not a fastnn model file ({MODEL_JSON} does not say format "
                         f"{FORMAT!r})")
    version = document.get("format_version")
    if type(version) is not int:
        raise ValueError(f"format_version must be an integer, got {version!r}")
    if version not in READABLE_VERSIONS:
        raise ValueError(f"format version {version} is not supported (this fastnn "
                         f"{_version.__version__} reads versions {list(READABLE_VERSIONS)}"
                         f"{'; upgrade fastnn' if version > FORMAT_VERSION else ''})")
    if document.get("kind") not in ("model", "weights"):
        raise ValueError(f"kind must be 'model' or 'weights', got {document.get('kind')!r}")


def array_specs(document, key):
    """The manifest list ``key``, checked: each entry's shape (tuple) and numpy dtype."""
    specs = document.get(key, [])
    if not isinstance(specs, list):
        raise ValueError(f"{key} must be a list")
    checked = []
    for i, spec in enumerate(specs):
        where = f"{key}[{i}]"
        if not isinstance(spec, dict):
            raise ValueError(f"{where} must be an object")
        shape = spec.get("shape")
        if (not isinstance(shape, list)
                or not all(type(d) is int and 0 <= d < 1 << 62 for d in shape)):
            raise ValueError(f"{where}: shape must be a list of non-negative integers, "
                             f"got {shape!r}")
        dtype_name = spec.get("dtype")
        dtype = ARRAY_DTYPES.get(dtype_name) if isinstance(dtype_name, str) else None
        if dtype is None:
            raise ValueError(f"{where}: dtype must be one of {sorted(ARRAY_DTYPES)}, "
                             f"got {spec.get('dtype')!r}")
        name, layer = spec.get("name"), spec.get("layer", "")
        if not isinstance(name, str) or not isinstance(layer, str):
            raise ValueError(f"{where}: name and layer must be strings")
        what = (f"layer {layer!r} weight {name!r}" if key == "weights"
                else f"optimizer state {name!r}")
        checked.append({"layer": layer, "name": name, "shape": tuple(shape), "dtype": dtype,
                        "what": what})
    return checked


def entries(prefix, specs):
    return [(f"{prefix}/{i}.npy", math.prod(s["shape"]) * s["dtype"].itemsize, s["what"])
            for i, s in enumerate(specs)]


def read_arrays(archive, prefix, specs):
    return [archive.read_array(f"{prefix}/{i}.npy", s["shape"], s["dtype"], s["what"])
            for i, s in enumerate(specs)]


def as_path(filepath):
    path = os.fspath(filepath) if isinstance(filepath, (str, os.PathLike)) else None
    if not isinstance(path, str):
        raise TypeError(f"expected a file path (str or os.PathLike), got "
                        f"{type(filepath).__name__}")
    return path
