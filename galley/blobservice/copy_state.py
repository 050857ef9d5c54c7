"""The copy properties a blob keeps after a Copy Blob into it (BlobState.copy), and how Get Blob
Properties (x-ms-copy-* headers) and List Blobs (<Copy…> elements) show them.

The recorded source is the source URL without its SAS signature (`sig`), as Azure reports it:
a copy's properties must not hand out the source's credentials to whoever can read the copy.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import format_datetime
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape

SUCCESS = "success"


def record(copy_id: str, source_url: str, size: int, completed: datetime) -> dict:
    """What BlobState.copy holds for a copy that finished (Galley's copies finish before they answer)."""
    return {"id": copy_id, "source": without_signature(source_url), "status": SUCCESS,
            "progress": f"{size}/{size}", "completionTime": format_datetime(completed, usegmt=True)}


def without_signature(url: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "sig"]
    return urlunsplit(parts._replace(query=urlencode(query)))


def of(blob) -> dict | None:
    return getattr(getattr(blob, "state", None), "copy", None)


def headers(blob) -> dict[str, str]:
    copy = of(blob)
    if not copy:
        return {}
    return {"x-ms-copy-id": copy["id"], "x-ms-copy-source": copy["source"], "x-ms-copy-status": copy["status"],
            "x-ms-copy-progress": copy["progress"], "x-ms-copy-completion-time": copy["completionTime"]}


def listing_xml(blob) -> str:
    copy = of(blob)
    if not copy:
        return ""
    return (f"<CopyId>{escape(copy['id'])}</CopyId><CopyStatus>{escape(copy['status'])}</CopyStatus>"
            f"<CopySource>{escape(copy['source'])}</CopySource><CopyProgress>{escape(copy['progress'])}"
            f"</CopyProgress><CopyCompletionTime>{escape(copy['completionTime'])}</CopyCompletionTime>")
