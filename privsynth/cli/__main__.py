"""``python -m privsynth.cli``: the ``privsynth`` command."""

from privsynth.cli import main

if __name__ == "__main__":
    main()
