"""How much a request may hold: the bounds every input rule shares, in one place, and the
nesting check that the API applies to each body and the service to what it stores.

Azure's own figures where it documents them (tags, uploadSizeBytes); Galley's choice, generous for
any real ARM body, where it does not (nesting, array lengths, script lines)."""

from __future__ import annotations

import re

from .errors import InvalidParameter

KIB, MIB, GIB, TIB = 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4

# JSON request bodies: ARM's are a handful of levels deep; 32 leaves room and keeps every stored
# value well inside what the serializers handle (orjson refuses to write past 255 levels).
MAX_JSON_DEPTH = 32
# What a resource's stored properties may reach (requests are checked first; this is the backstop
# that keeps anything unreadable out of the store).
MAX_STORED_DEPTH = 64

# Strings. A property with no rule of its own is capped at MAX_STRING_LENGTH.
MAX_STRING_LENGTH = 4096
MAX_URI_LENGTH = 2048

# Tags, as Azure documents them for resources.
MAX_TAGS = 50
MAX_TAG_NAME_LENGTH = 512
MAX_TAG_VALUE_LENGTH = 256

# Arrays. One with no rule of its own is capped at MAX_ARRAY_ITEMS.
MAX_ARRAY_ITEMS = 256
MAX_TARGET_REGIONS = 100
MAX_DATA_DISKS = 64  # LUNs 0-63
MAX_TEMPLATE_STEPS = 100  # customize, inVMValidations, distribute
MAX_SCRIPT_LINES = 1000
MAX_SCRIPT_LINE_LENGTH = 16 * KIB

# Disks. Content is whole 512-byte sectors; an upload's declared size adds a VHD footer.
SECTOR = 512
VHD_FOOTER = 512
MIN_UPLOAD_SIZE_BYTES = 20 * MIB + VHD_FOOTER
MAX_UPLOAD_SIZE_BYTES = 32 * TIB + VHD_FOOTER

# Numbers read from headers and query strings: at most this many digits (any byte offset fits).
MAX_NUMBER_DIGITS = 20
# A Range header's `bytes=a-b` (either side may be empty), in ASCII digits few enough for int():
# use with fullmatch. ARM downloads and the Blob service both read ranges through it.
BYTE_RANGE = re.compile(rf"bytes=([0-9]{{0,{MAX_NUMBER_DIGITS}}})-([0-9]{{0,{MAX_NUMBER_DIGITS}}})")


def ascii_number(value: str | None) -> int | None:
    """A header's or query's whole number, None unless it is ASCII digits (str.isdigit() also
    takes '²' and Arabic digits, which int() refuses or reads). More than MAX_NUMBER_DIGITS
    significant digits read as 10**MAX_NUMBER_DIGITS, past every size and count, without an
    int() of thousands of digits."""
    if not value or not (value.isascii() and value.isdigit()):
        return None
    digits = value.lstrip("0") or "0"
    return int(digits) if len(digits) <= MAX_NUMBER_DIGITS else 10 ** MAX_NUMBER_DIGITS


def nesting_depth(value: object) -> int:
    """How many objects and arrays deep `value` goes (walked without recursion: it may be deep)."""
    deepest, pending = 0, [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def check_storable(properties: dict) -> None:
    """Refuse, before it is recorded, what could not be serialized back when it is read."""
    if nesting_depth(properties) > MAX_STORED_DEPTH:
        raise InvalidParameter(f"The resource's properties nest more than {MAX_STORED_DEPTH} levels deep and "
                               "cannot be stored.", target="properties")
