"""``python -m bastion.cli``: the same entry point as the ``bastion`` script."""

from bastion.cli import main

main()
