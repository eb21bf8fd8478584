"""``python -m runtime`` is the same as the ``headframe`` command."""

from runtime.cli import main

if __name__ == "__main__":
    main()
