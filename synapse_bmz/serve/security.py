"""What the service lets in: bearer tokens, paths under the data root, upload names.

Tokens come from a file of ``USER TOKEN`` lines (``#`` comments; a line with a
token alone gets a user name derived from the token's hash). Comparison is in
constant time (`hmac.compare_digest`) against every known token, so timing
tells nothing about which prefix matched. Each token is one user: a user
sees only their own jobs.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path, PurePosixPath
from typing import Dict, Optional

from ..errors import InputError, OptionError

MIN_TOKEN_CHARS = 16


def read_tokens(path: Path) -> Dict[str, str]:
    """``token -> user`` from a token file.

    Raises
    ------
    OptionError
        ``--token-file`` missing, unreadable, empty, or with a short token.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise OptionError("--token-file", f"{path}: cannot read: {e.strerror or e}") from None
    tokens: Dict[str, str] = {}
    for n, line in enumerate(text.splitlines(), 1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            raise OptionError("--token-file", f"{path}:{n}: expected 'USER TOKEN' or 'TOKEN', got {len(parts)} fields")
        token = parts[-1]
        user = parts[0] if len(parts) == 2 else "user-" + hashlib.sha256(token.encode()).hexdigest()[:8]
        if len(token) < MIN_TOKEN_CHARS:
            raise OptionError("--token-file", f"{path}:{n}: token shorter than {MIN_TOKEN_CHARS} characters")
        tokens[token] = user
    if not tokens:
        raise OptionError("--token-file", f"{path}: no tokens in the file")
    return tokens


def default_token_file(state_dir: Path) -> Path:
    """``STATE/tokens``, created with one random token for user ``admin`` (mode 0600) if missing."""
    path = Path(state_dir) / "tokens"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"# synapse-bmz serve tokens: one 'USER TOKEN' per line\nadmin {secrets.token_urlsafe(32)}\n")
    return path


def user_for(authorization: Optional[str], tokens: Dict[str, str]) -> Optional[str]:
    """The user of an ``Authorization: Bearer TOKEN`` header, or None."""
    if not authorization:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return None
    given_b = given.strip().encode()
    user = None
    for token, name in tokens.items():
        # every token is compared, match or not, so the time does not depend on which one matched
        if hmac.compare_digest(token.encode(), given_b):
            user = name
    return user


def confine(data_root: Optional[Path], relative: str) -> Path:
    """The real path of ``relative`` under the data root.

    Refuses (InputError naming the path as given): no data root configured,
    absolute paths, ``..`` components, backslashes, NUL bytes, anything that
    resolves (symlinks followed) outside the root, and paths that do not exist.
    An ``.h5:key`` suffix is kept.
    """
    if data_root is None:
        raise InputError(relative, "server-side paths are disabled (the server has no --data-root); upload the file")
    if not relative or "\x00" in relative or "\\" in relative:
        raise InputError(relative, "not a valid relative path")
    base, sep, key = relative.partition(".h5:")
    if sep:
        base = base + ".h5"
    pure = PurePosixPath(base)
    if pure.is_absolute() or re.match(r"^[A-Za-z]:", base):
        raise InputError(relative, "absolute paths are not allowed; give a path relative to the data root")
    if any(part == ".." for part in pure.parts):
        raise InputError(relative, "'..' is not allowed in paths")
    root = Path(data_root).resolve()
    target = (root / pure).resolve()
    if target != root and root not in target.parents:
        raise InputError(relative, "resolves outside the data root")
    if not target.exists():
        raise InputError(relative, "no such file under the data root")
    return Path(str(target) + (":" + key if sep else ""))


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_filename(name: Optional[str], default: str = "input") -> str:
    """An upload's name reduced to a plain file name (no folders, no leading dots)."""
    name = PurePosixPath((name or "").replace("\\", "/")).name
    name = _SAFE.sub("_", name).lstrip(".")
    return name[:120] or default
