"""Evidence attached to a case: the bytes are stored in the database with their SHA-256 and size, so a
report can show that what is downloaded is what was attached.

The name and content type are kept as metadata; downloads serve the bytes as
``application/octet-stream`` whatever was declared, so neither ever needs to be a safe header value.
"""

from __future__ import annotations

import hashlib
import mimetypes
import re
import unicodedata

from bastion.cases.errors import CaseError, CaseNotFound
from bastion.cases.service import record, require_case
from bastion.model import CaseAttachment
from bastion.store import TenantScope

__all__ = ["MAX_ATTACHMENT_BYTES", "AttachmentTooLarge", "add_attachment", "get_attachment"]

MAX_ATTACHMENT_BYTES = 20 * 1024 * 1024
# A media type as HTTP writes one: type/subtype, both RFC 9110 tokens (parameters are dropped before).
_TCHARS = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(f"{_TCHARS}/{_TCHARS}")


class AttachmentTooLarge(CaseError):
    """Over :data:`MAX_ATTACHMENT_BYTES` (the API answers 413)."""


def add_attachment(
    scope: TenantScope,
    actor: str,
    case_ref: str,
    name: str,
    data: bytes,
    *,
    content_type: str | None = None,
) -> CaseAttachment:
    """Store ``data`` as an attachment named ``name`` (a file name; directories are dropped). A declared
    ``content_type`` that is not a valid media type is replaced by the one the name suggests."""
    case_id = require_case(scope, case_ref)
    clean = name.replace("\\", "/").rsplit("/", 1)[-1].strip()
    if not clean:
        raise CaseError("an attachment needs a file name")
    if any(unicodedata.category(c) == "Cc" for c in clean):
        raise CaseError(f"attachment name {clean!r} contains control characters; rename the file")
    if len(data) > MAX_ATTACHMENT_BYTES:
        raise AttachmentTooLarge(
            f"attachment {clean!r} is {len(data)} bytes; the limit is {MAX_ATTACHMENT_BYTES} bytes (20 MB)"
        )
    if not data:
        raise CaseError(f"attachment {clean!r} is empty")
    declared = (content_type or "").split(";")[0].strip().lower()
    if not _MEDIA_TYPE.fullmatch(declared):
        declared = ""
    ctype = declared or mimetypes.guess_type(clean)[0] or "application/octet-stream"
    digest = hashlib.sha256(data).hexdigest()
    att = scope.cases.add_attachment(
        case_id, name=clean[:500], content_type=ctype[:200], data=data, sha256=digest, author=actor
    )
    record(
        scope,
        actor,
        case_id,
        "attachment.added",
        f"Attachment {att.name} ({att.size} bytes, sha256 {digest[:12]}...)",
        {"attachment_id": att.id, "name": att.name, "size": att.size, "sha256": digest},
        audit="case.attachment",
    )
    return att


def get_attachment(scope: TenantScope, case_ref: str, attachment_id: str) -> tuple[CaseAttachment, bytes]:
    """The attachment's metadata and bytes."""
    case_id = require_case(scope, case_ref)
    found = scope.cases.attachment(case_id, attachment_id)
    if found is None:
        raise CaseNotFound(f"no attachment {attachment_id} on this case")
    return found
