# SPDX-License-Identifier: MIT
"""cffi build script: compiles lib/*.c into the extension lightws._lightws
(API mode, so the compiler checks _cdef.h against lightws.h)."""

import glob
import os

from cffi import FFI

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.normpath(os.path.join(_HERE, "..", "..", ".."))


def _rel(path: str) -> str:
    # setuptools wants paths relative to the project root when it can have them.
    rel = os.path.relpath(path, os.getcwd())
    return path if rel.startswith("..") else rel


def _cdef() -> str:
    with open(os.path.join(_HERE, "_cdef.h"), encoding="utf-8") as f:
        return f.read()


ffibuilder = FFI()
ffibuilder.cdef(_cdef())
ffibuilder.set_source(
    "lightws._lightws",
    '#include "lightws.h"',
    sources=[_rel(p) for p in sorted(glob.glob(os.path.join(_ROOT, "lib", "*.c")))],
    include_dirs=[_rel(os.path.join(_ROOT, "lib", "include")),
                  _rel(os.path.join(_ROOT, "lib"))],
    extra_compile_args=["-O2"],
)

if __name__ == "__main__":
    ffibuilder.compile(tmpdir=os.path.join(_ROOT, "build", "python"), verbose=True)
