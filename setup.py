"""Build the Cython kernels in kafscale/_fast; everything else is declared in pyproject.toml."""

from Cython.Build import cythonize
from setuptools import Extension, setup

extensions = [
    Extension(
        "kafscale._fast._kernels",
        ["kafscale/_fast/_kernels.pyx"],
        include_dirs=["kafscale/_fast"],
        depends=["kafscale/_fast/crc32c_hw.h"],
        extra_compile_args=["-O3"],
    ),
]

setup(
    ext_modules=cythonize(
        extensions,
        language_level=3,
        compiler_directives={"boundscheck": False, "wraparound": False, "cdivision": True},
    ),
)
