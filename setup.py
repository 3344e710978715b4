"""Package layout that pyproject.toml alone cannot express.

The command layer lives in ``cli/`` at the top of the checkout but installs as
``fogctl.cli`` (ARCHITECTURE.md), so nothing named bare ``cli`` lands in
site-packages. Engine subpackages are found automatically.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["fogctl", "fogctl.*"]), "fogctl.cli"],
    package_dir={"fogctl.cli": "cli"},
)
