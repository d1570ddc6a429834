"""The file part of a multipart/form-data upload, found in bounded work: at most MAX_PARTS parts
and MAX_PART_HEADER_BYTES of headers per part are looked at (the stdlib email parser spends seconds
of CPU on a body of 50 000 tiny parts)."""
from __future__ import annotations

from email.message import Message

from kws.edge.errors import KwsError

MAX_PARTS = 16
MAX_PART_HEADER_BYTES = 8 * 1024
MAX_BOUNDARY_CHARS = 70  # RFC 2046
CRLF = b"\r\n"
HEADER_END = b"\r\n\r\n"


class MultipartError(KwsError):
    """A multipart body that is malformed, too complex, or has no file part."""


def _header_param(value: str, header: str, param: str) -> str | None:
    msg = Message()
    msg[header] = value
    found = msg.get_param(param, header=header)
    return found if isinstance(found, str) else None


def _is_file_part(head: bytes) -> bool:
    for line in head.decode("latin-1").split("\r\n"):
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-disposition":
            return (_header_param(value.strip(), "content-disposition", "filename") is not None
                    or _header_param(value.strip(), "content-disposition", "name") == "file")
    return False


def first_file_part(body: bytes, content_type: str) -> bytes:
    """The content of the first part with a filename (or named ``file``); MultipartError otherwise."""
    boundary = _header_param(content_type, "content-type", "boundary")
    if not boundary or len(boundary) > MAX_BOUNDARY_CHARS:
        raise MultipartError(f"multipart upload needs a boundary of 1..{MAX_BOUNDARY_CHARS} characters")
    delimiter = b"--" + boundary.encode("latin-1", "replace")
    pos = body.find(delimiter)
    if pos < 0:
        raise MultipartError("multipart upload does not contain its boundary")
    for _ in range(MAX_PARTS):
        pos += len(delimiter)
        if body[pos:pos + 2] == b"--":
            break
        line_end = body.find(CRLF, pos)
        if line_end < 0:
            raise MultipartError("multipart upload ends inside a part")
        start = line_end + len(CRLF)
        if body.startswith(CRLF, start):
            head, content_start = b"", start + len(CRLF)
        else:
            head_end = body.find(HEADER_END, start, start + MAX_PART_HEADER_BYTES + len(HEADER_END))
            if head_end < 0:
                raise MultipartError(f"a part's headers are unterminated or longer than {MAX_PART_HEADER_BYTES} bytes")
            head, content_start = body[start:head_end], head_end + len(HEADER_END)
        end = body.find(CRLF + delimiter, content_start)
        if end < 0:
            raise MultipartError("multipart upload has no closing boundary")
        if _is_file_part(head):
            return body[content_start:end]
        pos = end + len(CRLF)
    else:
        raise MultipartError(f"multipart upload has more than {MAX_PARTS} parts before its file")
    raise MultipartError("multipart upload has no file part")
