# SPDX-License-Identifier: MIT
"""Builds the lightws Python package: the cffi extension lightws._lightws
compiles lib/*.c (API mode), and the pure-Python package lives in
bindings/python/lightws."""

import os

from setuptools import setup

_HERE = os.path.dirname(os.path.abspath(__file__))


def _version() -> str:
    with open(os.path.join(_HERE, "lib", "include", "lightws.h"), encoding="utf-8") as f:
        for line in f:
            if line.startswith("#define LIGHTWS_VERSION_STRING"):
                return line.split('"')[1]
    raise RuntimeError("LIGHTWS_VERSION_STRING not found in lightws.h")


setup(
    name="lightws",
    version=_version(),
    description="Websocket (RFC 6455) streams for Python over a C core that never allocates",
    long_description=open(os.path.join(_HERE, "docs", "python.md"), encoding="utf-8").read()
    if os.path.exists(os.path.join(_HERE, "docs", "python.md")) else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.8",
    package_dir={"": "bindings/python"},
    packages=["lightws"],
    package_data={"lightws": ["py.typed", "_cdef.h"]},
    setup_requires=["cffi>=1.15"],
    install_requires=["cffi>=1.15"],
    cffi_modules=["bindings/python/lightws/_build.py:ffibuilder"],
    zip_safe=False,
    # setuptools' own temp dirs go under build/python, out of the way of
    # the Makefile's build/ tree.
    options={"build": {"build_base": "build/python"}},
    classifiers=[
        "License :: OSI Approved :: MIT License",
        "Programming Language :: C",
        "Programming Language :: Python :: 3",
        "Topic :: Internet :: WWW/HTTP",
    ],
)
