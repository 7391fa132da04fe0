"""The hash of the extension's source, recorded by ``make labext`` beside the build.

``tests/test_labextension.py`` recomputes it: a source change committed without a rebuild
(``make labext``) fails there, so the committed ``prebuilt/`` never lags ``src/``.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
RECORD = HERE / "prebuilt" / "source.sha256"
SOURCES = ("package.json", "package-lock.json", "tsconfig.json")


def source_files() -> list[Path]:
    return [HERE / name for name in SOURCES] + sorted((HERE / "src").rglob("*.ts"))


def source_hash() -> str:
    digest = hashlib.sha256()
    for path in source_files():
        digest.update(path.relative_to(HERE).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        RECORD.write_text(source_hash() + "\n")
    print(source_hash())
