"""Package layout that pyproject.toml alone cannot express.

The command layer lives in ``cli/`` at the top of the checkout but installs as
``fogctl.cli`` (ARCHITECTURE.md), so nothing named bare ``cli`` lands in
site-packages. Engine subpackages are found automatically.
"""

from glob import glob

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["fogctl", "fogctl.*"]), "fogctl.cli"],
    package_dir={"fogctl.cli": "cli"},
    # `man fogctl` works once the install's bin/ is on PATH (man-db maps bin -> share/man).
    data_files=[
        ("share/man/man1", sorted(glob("man/*.1"))),
        ("share/man/man5", sorted(glob("man/*.5"))),
    ],
)
