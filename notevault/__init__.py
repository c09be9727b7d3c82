"""notevault: keep Obsidian study notes honest by running their code and checking their formulas."""

__version__ = "0.1.0"
