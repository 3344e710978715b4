"""fogctl: composable Unix commands for a decentralized fog-computing network.

The engine is importable without the CLI. Importing this package is cheap: heavy
libraries (docker, web3, pymoo, stem) are imported only by the code that uses them.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
